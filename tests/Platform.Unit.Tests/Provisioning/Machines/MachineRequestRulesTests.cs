using Platform.Contracts.Provisioning;
using Platform.Contracts.Tenancy;
using Platform.Provisioning.Hosts;
using Platform.Provisioning.Machines;

namespace Platform.Unit.Tests.Provisioning.Machines;

/// <summary>What a creation request must hold, and which host or cloud placement may put it on.</summary>
public sealed class MachineRequestRulesTests
{
    private static CreateMachineRequest Request(string? kind = "sandbox", int? vcpus = 1, int? memoryMiB = 64) =>
        new(null, kind, null, null, vcpus, memoryMiB, null, null, null, null, null);

    [Fact]
    public void A_well_formed_request_has_no_errors()
    {
        Assert.Empty(MachineRequestRules.Check(Request() with { Name = "web-1", Labels = new() { ["team"] = "ml" }, Command = ["/bin/sh", "-c", "true"] }));
    }

    [Theory]
    [InlineData(null, 1, 64, "kind")]
    [InlineData("mainframe", 1, 64, "kind")]
    [InlineData("sandbox", 0, 64, "vcpus")]
    [InlineData("sandbox", 65, 64, "vcpus")]
    [InlineData("sandbox", 1, 8, "memoryMiB")]
    [InlineData("sandbox", 1, null, "memoryMiB")]
    [InlineData("cloud", 1, 64, "driver")]
    public void A_request_outside_the_rules_is_refused_naming_the_field(string? kind, int? vcpus, int? memoryMiB, string field)
    {
        var errors = MachineRequestRules.Check(Request(kind, vcpus, memoryMiB));

        Assert.Equal([field], errors.Keys);
    }

    [Fact]
    public void Names_labels_commands_and_exit_nodes_are_checked_each_under_its_own_field()
    {
        var errors = MachineRequestRules.Check(Request("microvm", 1, 128) with
        {
            Name = "Not_A_Label",
            Labels = new() { ["Bad Key"] = "x" },
            Command = ["/bin/true"],
            ExitNodeId = "not-a-guid",
            Boot = "warm",
        });

        Assert.Equal(["boot", "command", "exitNodeId", "labels", "name"], errors.Keys.Order(StringComparer.Ordinal));
        Assert.Contains("micro-VM runs its template's init", errors["command"][0], StringComparison.Ordinal);
    }

    [Fact]
    public void A_host_refuses_a_machine_past_its_machine_count_its_memory_or_disk_left_after_the_reserve_or_its_vcpu_overcommit()
    {
        var guardrails = new HostGuardrails(ReservedHostMemoryMiB: 1024, MaxMachinesPerHost: 3, MaxVcpuOvercommit: 2.0, ReservedHostDiskMiB: 1000);
        HostView Host(int machines, int vcpus, int memoryMiB, int diskMiB = 0) =>
            new(Guid.CreateVersion7(), "h1", 2, 4096, 5000, "tcg", [], [], new HostUsage(machines, vcpus, memoryMiB, diskMiB), DateTimeOffset.UnixEpoch, 1);

        Assert.Null(Host(2, 3, 2048).Refusal(new MachineShape(1, 1024, 0), guardrails));
        Assert.Contains("maxMachinesPerHost 3", Host(3, 0, 0).Refusal(new MachineShape(1, 64, 0), guardrails), StringComparison.Ordinal);
        Assert.Contains("1024 MiB of memory left", Host(1, 1, 2048).Refusal(new MachineShape(1, 1025, 0), guardrails), StringComparison.Ordinal);
        Assert.Contains("0 vCPUs left", Host(1, 4, 64).Refusal(new MachineShape(1, 64, 0), guardrails), StringComparison.Ordinal);
        Assert.Null(Host(1, 1, 64, diskMiB: 3000).Refusal(new MachineShape(1, 64, 1000), guardrails));
        Assert.Contains("1000 MiB of disk left for machines (1000 MiB reserved", Host(1, 1, 64, diskMiB: 3000).Refusal(new MachineShape(1, 64, 1001), guardrails), StringComparison.Ordinal);
    }

    [Fact]
    public void A_cloud_machine_gets_the_first_region_and_the_smallest_instance_type_that_holds_it_and_an_impossible_one_is_refused()
    {
        var aws = new DriverCapacity("aws", "cloud", 64, 512, 65536, 0, ["us-east-1", "eu-west-1"],
            [new InstanceType("t3.large", 2, 8192), new InstanceType("t3.micro", 2, 1024)]);
        var local = new DriverCapacity("sandbox", "sandbox", 2, 16, 4096, 0);

        Assert.Equal(("us-east-1", "t3.micro"), CloudPlacement.Choose(aws, null, null, new MachineShape(1, 512, 0)));
        Assert.Equal(("eu-west-1", "t3.large"), CloudPlacement.Choose(aws, "eu-west-1", null, new MachineShape(2, 4096, 0)));
        Assert.Equal("instanceType", CloudPlacement.Refusal(aws, null, null, new MachineShape(4, 512, 0))?.Field);
        Assert.Equal("region", CloudPlacement.Refusal(aws, "ap-south-1", null, new MachineShape(1, 512, 0))?.Field);
        Assert.Equal("instanceType", CloudPlacement.Refusal(aws, null, "t3.micro", new MachineShape(1, 2048, 0))?.Field);
        Assert.Equal("region", CloudPlacement.Refusal(local, "us-east-1", null, new MachineShape(1, 64, 0))?.Field);
        Assert.Null(CloudPlacement.Refusal(local, null, null, new MachineShape(1, 64, 0)));
    }
}
