using Platform.Provisioning.Drivers.Disks;
using Platform.Provisioning.Drivers.Guests;
using Platform.Provisioning.Drivers.MicroVm;
using Platform.Testing;

namespace Platform.Provisioning.Tests;

/// <summary>Micro-VMs on a disk of their own: a virtio-blk drive holding an ext4 root that outlives the VM.</summary>
public sealed partial class MicroVmTests
{
    [Fact]
    public async Task A_micro_vm_with_a_disk_runs_its_root_on_it_up_to_its_size_and_finds_what_it_wrote_there_when_booted_again()
    {
        await using var machine = await fixture.MachineAsync(subnet: 41);
        var disk = Path.Combine(MicroVmFixture.WorkRoot, machine.Spec.Id + ".img");
        try
        {
            await DiskImage.EnsureAsync(disk, 64);
            var spec = machine.Spec with { DiskPath = disk };
            machine.Vm = await fixture.Runner.BootAsync(spec, Timeout());

            var seen = await RunAsync(machine.Vm, new GuestCommand(["/bin/sh", "-c",
                "awk '$2 == \"/\" {print $1, $3}' /proc/mounts; df -m / | tail -n 1 | awk '{print $2}'; echo kept-across-boots > /root/kept; "
                + "dd if=/dev/zero of=/root/too-big bs=1M count=100 2>/dev/null || echo full; rm -f /root/too-big; sync"]));
            var lines = seen.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(seen.Code == 0 && lines.Length == 3, seen.Output + seen.Errors);
            Assert.Equal("/dev/vda ext4", lines[0]);
            Assert.InRange(int.Parse(lines[1], System.Globalization.CultureInfo.InvariantCulture), 50, 64);
            Assert.Equal("full", lines[2]);

            await machine.Vm.DisposeAsync();
            machine.Vm = await fixture.Runner.BootAsync(spec, Timeout());

            var again = await RunAsync(machine.Vm, new GuestCommand(["/bin/sh", "-c", "cat /root/kept; cat /etc/machine-id"]));
            Assert.Equal((0, $"kept-across-boots\n{spec.Identity.MachineId}\n"), (again.Code, again.Output));
        }
        finally
        {
            await EndAsync(machine);
            DiskImage.Delete(disk);
        }
    }

    [Fact]
    public async Task A_micro_vm_of_an_image_template_boots_onto_a_copy_of_its_root_grown_to_its_disk_and_runs_its_entrypoint()
    {
        await using var image = await TestImageTemplate.BuildAsync(Environment.GetEnvironmentVariable("PLATFORM_MICROVM_TEMPLATES")!);
        var template = MicroVmTemplate.Load(image.Directory);
        await using var machine = await fixture.MachineAsync(subnet: 44);
        var disk = Path.Combine(MicroVmFixture.WorkRoot, machine.Spec.Id + ".img");
        try
        {
            await DiskImage.EnsureCopyOfAsync(disk, template.Image!.RootImagePath, 128, Timeout());
            machine.Vm = await fixture.Runner.BootAsync(machine.Spec with { Template = template, DiskPath = disk }, Timeout());

            var seen = await RunAsync(machine.Vm, new GuestCommand(["sh", "-c", "echo $GREETING; df -m / | tail -n 1 | awk '{print $2}'; cat /etc/machine-id; ls /app"]));
            var lines = seen.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(seen.Code == 0 && lines.Length == 4, seen.Output + seen.Errors);
            Assert.Equal("hello", lines[0]);
            Assert.InRange(int.Parse(lines[1], System.Globalization.CultureInfo.InvariantCulture), 100, 128);
            Assert.Equal([machine.Spec.Identity.MachineId, "run"], lines[2..]);
            await Eventually.TrueAsync(() => File.ReadAllText(machine.Vm.SerialLogPath).Contains(TestImageTemplate.Greeting, StringComparison.Ordinal),
                TimeSpan.FromSeconds(30), "the image's entrypoint says hello on the console");
        }
        finally
        {
            await EndAsync(machine);
            DiskImage.Delete(disk);
        }
    }

    [Fact]
    public async Task Each_clone_of_a_checkpointed_micro_vm_with_a_disk_starts_on_its_own_copy_of_the_disk()
    {
        await using var parent = await fixture.MachineAsync(subnet: 42);
        await using var clone = await fixture.MachineAsync(subnet: 43);
        var parentDisk = Path.Combine(MicroVmFixture.WorkRoot, parent.Spec.Id + ".img");
        var cloneDisk = Path.Combine(MicroVmFixture.WorkRoot, clone.Spec.Id + ".img");
        var checkpointDirectory = Path.Combine(Path.GetTempPath(), "pmt-checkpoint-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            await DiskImage.EnsureAsync(parentDisk, 64);
            parent.Vm = await fixture.Runner.BootAsync(parent.Spec with { DiskPath = parentDisk }, Timeout());
            Assert.Equal(0, (await RunAsync(parent.Vm, new GuestCommand(["/bin/sh", "-c", "echo before > /root/file"]))).Code);

            var image = await fixture.Runner.CheckpointAsync(parent.Vm, checkpointDirectory, Timeout());
            Assert.True(image.HasDisk);
            await Assert.ThrowsAsync<ArgumentException>(() => fixture.Runner.CloneAsync(image, clone.Spec, Timeout()));
            await DiskImage.CopySparseAsync(image.DiskPath, cloneDisk, Timeout());
            clone.Vm = await fixture.Runner.CloneAsync(image, clone.Spec with { DiskPath = cloneDisk }, Timeout());

            Assert.Equal(0, (await RunAsync(parent.Vm, new GuestCommand(["/bin/sh", "-c", "echo parent-after > /root/file; sync"]))).Code);
            var seen = await RunAsync(clone.Vm, new GuestCommand(["/bin/sh", "-c", "cat /root/file; echo clone-after > /root/file; sync; cat /etc/machine-id"]));
            Assert.Equal((0, $"before\n{clone.Spec.Identity.MachineId}\n"), (seen.Code, seen.Output));
            Assert.Equal("parent-after\n", (await RunAsync(parent.Vm, new GuestCommand(["cat", "/root/file"]))).Output);
        }
        finally
        {
            await EndAsync(parent);
            await EndAsync(clone);

            DiskImage.Delete(parentDisk);
            DiskImage.Delete(cloneDisk);
            if (Directory.Exists(checkpointDirectory))
            {
                Directory.Delete(checkpointDirectory, recursive: true);
            }
        }
    }

    /// <summary>Its VM ends before its disk is removed (the test's machine only deletes its namespace).</summary>
    private static async Task EndAsync(TestMachine machine)
    {
        if (machine.Vm is not null)
        {
            await machine.Vm.DisposeAsync();
            machine.Vm = null;
        }
    }
}
