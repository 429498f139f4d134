using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>Cloud machines through the gateway, run by a host agent that offers the cloud drivers against local fakes of the clouds.</summary>
[Collection(CloudStackCollection.Name)]
public sealed class CloudMachineTests(CloudStack clouds)
{
    private PlatformStack Stack => clouds.Stack;

    [Fact]
    public async Task An_aws_machine_runs_in_the_region_asked_for_stops_starts_and_is_destroyed_and_the_instance_with_it()
    {
        using var admin = await Stack.AdminAsync();
        var (tenantId, tenant) = await admin.CreateTenantWithAdminAsync();

        var id = await tenant.CreateMachineAsync(new { name = "cloud-web", kind = "cloud", driver = "aws", template = "debian-12-aws", region = "eu-west-1", vcpus = 1, memoryMiB = 512 });

        var running = await tenant.WaitForMachineAsync(id, "running");
        Assert.Equal(("aws", "eu-west-1", "t3.micro"), (running.GetProperty("driver").GetString(), running.GetProperty("region").GetString(), running.GetProperty("instanceType").GetString()));
        Assert.StartsWith("10.0.", running.GetProperty("network").GetProperty("ip").GetString(), StringComparison.Ordinal);
        Assert.StartsWith("203.0.113.", running.GetProperty("network").GetProperty("publicIp").GetString(), StringComparison.Ordinal);
        var instance = clouds.Ec2.Instances.Single(i => i.Tags.GetValueOrDefault("platform:machine-id") == id.ToString());
        Assert.Equal((tenantId.ToString(), "cloud-web", "eu-west-1", "ami-0a1b2c3d4e5f60002"), (instance.Tags["platform:tenant-id"], instance.Tags["Name"], instance.Region, instance.ImageId));

        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/stop");
        await tenant.WaitForMachineAsync(id, "stopped");
        Assert.Equal("stopped", Instance(id).State);
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/start");
        await tenant.WaitForMachineAsync(id, "running");
        Assert.Equal(("running", instance.Id), (Instance(id).State, Instance(id).Id));
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
        Assert.Equal("terminated", Instance(id).State);

        var events = await tenant.GetStringAsync($"/api/v1/machines/{id}/events");
        foreach (var said in clouds.Output.Append(events))
        {
            Assert.DoesNotContain(clouds.Ec2.SecretAccessKey, said, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_recreated_aws_machine_runs_on_a_new_instance_and_its_old_one_is_terminated()
    {
        using var admin = await Stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var id = await tenant.CreateMachineAsync(new { kind = "cloud", driver = "aws", template = "debian-12-aws", vcpus = 1, memoryMiB = 512 });
        await tenant.WaitForMachineAsync(id, "running");
        var first = Instance(id);

        var recreate = await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/recreate");
        await tenant.WaitForMachineAsync(id, "running");

        Assert.Equal("succeeded", (await tenant.GetFromJsonAsync<JsonElement>(recreate)).GetProperty("status").GetString());
        var instances = clouds.Ec2.Instances.Where(i => i.Tags.GetValueOrDefault("platform:machine-id") == id.ToString()).ToDictionary(i => i.Id, i => i.State);
        Assert.Equal(2, instances.Count);
        Assert.Equal("terminated", instances[first.Id]);
        Assert.Equal("running", instances.Single(i => i.Key != first.Id).Value);
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
        Assert.DoesNotContain(clouds.Ec2.Instances, i => i.Tags.GetValueOrDefault("platform:machine-id") == id.ToString() && i.State != "terminated");
    }

    [Fact]
    public async Task A_gcp_machine_runs_in_the_default_zone_and_is_destroyed_and_its_instance_with_it()
    {
        using var admin = await Stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();

        var id = await tenant.CreateMachineAsync(new { kind = "cloud", driver = "gcp", template = "debian-12-gcp", vcpus = 2, memoryMiB = 1024 });

        var running = await tenant.WaitForMachineAsync(id, "running");
        Assert.Equal(("us-central1-a", "e2-small"), (running.GetProperty("region").GetString(), running.GetProperty("instanceType").GetString()));
        Assert.Equal("RUNNING", clouds.ComputeEngine.Instances.Single(i => i.Labels["platform-machine-id"] == id.ToString()).Status);
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
        Assert.DoesNotContain(clouds.ComputeEngine.Instances, i => i.Labels["platform-machine-id"] == id.ToString());
    }

    [Fact]
    public async Task An_azure_machine_runs_is_deallocated_starts_and_is_destroyed_and_its_vm_with_it()
    {
        using var admin = await Stack.AdminAsync();
        var (tenantId, tenant) = await admin.CreateTenantWithAdminAsync();

        var id = await tenant.CreateMachineAsync(new { name = "azure-web", kind = "cloud", driver = "azure", template = "debian-12-azure", vcpus = 1, memoryMiB = 512 });

        var running = await tenant.WaitForMachineAsync(id, "running");
        Assert.Equal(("azure", "westeurope", "Standard_B1s"), (running.GetProperty("driver").GetString(), running.GetProperty("region").GetString(), running.GetProperty("instanceType").GetString()));
        var vm = Vm(id);
        Assert.Equal(($"pm-{id:N}", tenantId.ToString(), "running"), (vm.Name, vm.Tags["platform-tenant-id"], vm.PowerState));
        Assert.Equal("azure-web", vm.Properties["osProfile"]!["computerName"]!.GetValue<string>());

        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/stop");
        await tenant.WaitForMachineAsync(id, "stopped");
        Assert.Equal("deallocated", Vm(id).PowerState);
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/start");
        await tenant.WaitForMachineAsync(id, "running");
        Assert.Equal("running", Vm(id).PowerState);
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
        Assert.DoesNotContain(clouds.Arm.Vms, v => v.Tags.GetValueOrDefault("platform-machine-id") == id.ToString());

        var events = await tenant.GetStringAsync($"/api/v1/machines/{id}/events");
        foreach (var said in clouds.Output.Append(events))
        {
            Assert.DoesNotContain(clouds.Arm.ClientSecret, said, StringComparison.Ordinal);
            Assert.DoesNotContain("eyJ0eXAi", said, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task An_azure_allocation_failure_fails_the_machine_with_azures_message_and_leaves_no_vm()
    {
        using var admin = await Stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        clouds.Arm.FailNextCreateForAllocation();

        var id = await tenant.CreateMachineAsync(new { kind = "cloud", driver = "azure", template = "debian-12-azure", vcpus = 1, memoryMiB = 512 });

        var failed = await tenant.WaitForMachineAsync(id, "failed");
        Assert.StartsWith("creation failed at the launch step: azure: AllocationFailed: Allocation failed. We do not have sufficient capacity for the requested VM size in this region.",
            failed.GetProperty("lastError").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain(clouds.Arm.Vms, v => v.Tags.GetValueOrDefault("platform-machine-id") == id.ToString());
    }

    [Fact]
    public async Task A_launch_ec2_refuses_for_capacity_fails_the_machine_with_the_providers_message()
    {
        using var admin = await Stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        clouds.Ec2.RefuseNextRunForCapacity();

        var id = await tenant.CreateMachineAsync(new { kind = "cloud", driver = "aws", template = "debian-12-aws", vcpus = 1, memoryMiB = 512 });

        var failed = await tenant.WaitForMachineAsync(id, "failed");
        Assert.StartsWith("creation failed at the launch step: aws: InsufficientInstanceCapacity: We currently do not have sufficient t3.micro capacity", failed.GetProperty("lastError").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain(clouds.Ec2.Instances, i => i.Tags.GetValueOrDefault("platform:machine-id") == id.ToString() && i.State != "terminated");
    }

    [Theory]
    [InlineData("""{"kind":"cloud","driver":"aws","template":"debian-12-aws","region":"mars-north-1","vcpus":1,"memoryMiB":512}""", "region", "us-east-1, eu-west-1")]
    [InlineData("""{"kind":"cloud","driver":"aws","template":"debian-12-aws","instanceType":"p5.48xlarge","vcpus":1,"memoryMiB":512}""", "instanceType", "t3.micro (2 vCPUs, 1024 MiB)")]
    [InlineData("""{"kind":"cloud","driver":"aws","template":"debian-12-aws","instanceType":"t3.micro","vcpus":2,"memoryMiB":4096}""", "instanceType", "less than the 2 vCPUs and 4096 MiB asked")]
    [InlineData("""{"kind":"cloud","driver":"azure","template":"debian-12-azure","region":"eastus","vcpus":1,"memoryMiB":512}""", "region", "the azure driver offers westeurope; not eastus")]
    [InlineData("""{"kind":"cloud","driver":"gcp","template":"debian-12-gcp","region":"us-east-1","vcpus":1,"memoryMiB":512}""", "region", "us-central1-a")]
    public async Task Bad_cloud_input_is_a_problem_naming_the_field_and_the_allowed_values_before_anything_is_spent(string body, string field, string detail)
    {
        using var admin = await Stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var runsBefore = clouds.Ec2.Actions.Count(a => a == "RunInstances");

        var response = await tenant.PostAsync("/api/v1/machines", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));

        var problem = await Problems.AssertAsync(response, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        Assert.Contains(detail, problem.GetProperty("errors").GetProperty(field)[0].GetString(), StringComparison.Ordinal);
        Assert.Empty((await tenant.GetFromJsonAsync<JsonElement>("/api/v1/machines")).GetProperty("items").EnumerateArray());
        Assert.Equal(runsBefore, clouds.Ec2.Actions.Count(a => a == "RunInstances"));
    }

    [Fact]
    public async Task The_cloud_host_reports_each_drivers_regions_and_instance_types()
    {
        using var admin = await Stack.AdminAsync();

        var drivers = (await admin.GetFromJsonAsync<JsonElement>("/api/v1/hosts")).EnumerateArray().Single().GetProperty("drivers").EnumerateArray().ToDictionary(d => d.GetProperty("name").GetString()!);

        Assert.Equal(["us-east-1", "eu-west-1"], drivers["aws"].GetProperty("regions").EnumerateArray().Select(r => r.GetString()));
        Assert.Equal(["t3.large", "t3.micro"], drivers["aws"].GetProperty("instanceTypes").EnumerateArray().Select(t => t.GetProperty("name").GetString()));
        Assert.False(drivers["aws"].TryGetProperty("unavailable", out _));
        Assert.Equal(["westeurope"], drivers["azure"].GetProperty("regions").EnumerateArray().Select(r => r.GetString()));
        Assert.False(drivers["azure"].TryGetProperty("unavailable", out _));
        Assert.Contains("debian-12-gcp", await admin.GetStringAsync("/api/v1/templates"), StringComparison.Ordinal);
    }

    private Platform.Testing.Clouds.ArmFake.FakeVm Vm(Guid machineId) =>
        clouds.Arm.Vms.Single(v => v.Tags.GetValueOrDefault("platform-machine-id") == machineId.ToString());

    private Platform.Testing.Clouds.Ec2Fake.FakeInstance Instance(Guid machineId) =>
        clouds.Ec2.Instances.Single(i => i.Tags.GetValueOrDefault("platform:machine-id") == machineId.ToString());
}
