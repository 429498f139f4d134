using Platform.Provisioning.Drivers.Guests;
using Platform.Testing;

namespace Platform.Provisioning.Tests;

/// <summary>A running micro-VM checkpointed and cloned: it runs on, and each clone is a machine of its own with its parent's files.</summary>
public sealed partial class MicroVmTests
{
    [Fact]
    public async Task A_checkpointed_micro_vm_runs_on_and_its_clones_answer_as_themselves_with_the_files_it_wrote_and_entropy_of_their_own()
    {
        var snapshot = await fixture.SnapshotAsync();
        await using var parent = await fixture.MachineAsync(subnet: 31);
        await using var first = await fixture.MachineAsync(subnet: 32);
        await using var second = await fixture.MachineAsync(subnet: 33);
        await RestoreAsync(snapshot, parent);
        var checkpointDirectory = Path.Combine(Path.GetTempPath(), "pmt-checkpoint-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            Assert.Equal(0, (await RunAsync(parent.Vm!, new GuestCommand(["/bin/sh", "-c", "echo written-by-parent > /scratch/kept"]))).Code);

            var image = await fixture.Runner.CheckpointAsync(parent.Vm!, checkpointDirectory, Timeout());
            first.Vm = await fixture.Runner.CloneAsync(image, first.Spec, Timeout());
            second.Vm = await fixture.Runner.CloneAsync(image, second.Spec, Timeout());

            var parentAfter = await RunAsync(parent.Vm!, new GuestCommand(["/bin/sh", "-c", "cat /etc/machine-id; hostname"]));
            Assert.Equal((0, $"{parent.Spec.Identity.MachineId}\n{parent.Spec.Identity.Hostname}\n"), (parentAfter.Code, parentAfter.Output));
            Assert.Equal(Greeting(parent.Spec.Identity), await ProbeAsync(parent.Spec));
            var randoms = new List<string>();
            foreach (var clone in new[] { first, second })
            {
                var seen = await RunAsync(clone.Vm!, new GuestCommand(["/bin/sh", "-c", "cat /etc/machine-id; hostname; cat /scratch/kept; ip -o -4 addr show dev eth0 | awk '{print $4}'; cat /sys/class/net/eth0/address"]));
                Assert.Equal((0, $"{clone.Spec.Identity.MachineId}\n{clone.Spec.Identity.Hostname}\nwritten-by-parent\n{clone.Spec.Identity.Address}/24\n{clone.Spec.Identity.Mac}\n"), (seen.Code, seen.Output));
                Assert.Equal(Greeting(clone.Spec.Identity), await ProbeAsync(clone.Spec));
                Assert.Equal(clone.Spec.Identity.Mac, await NeighbourMacAsync(clone.Spec));
                randoms.Add((await RunAsync(clone.Vm!, new GuestCommand(["/bin/sh", "-c", "head -c 16 /dev/urandom | od -An -tx1"]))).Output);
            }

            Assert.NotEqual(randoms[0], randoms[1]);
        }
        finally
        {
            if (Directory.Exists(checkpointDirectory))
            {
                Directory.Delete(checkpointDirectory, recursive: true);
            }
        }
    }

    private static string Greeting(Platform.Provisioning.Drivers.MicroVm.GuestIdentity identity) =>
        $"platform-guest id={identity.MachineId} hostname={identity.Hostname} ip={identity.Address}";
}
