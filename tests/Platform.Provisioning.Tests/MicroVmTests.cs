using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Platform.Provisioning.Drivers.MicroVm;
using Platform.Provisioning.Drivers.Sandbox;
using Platform.Provisioning.Drivers.Networking;

namespace Platform.Provisioning.Tests;

/// <summary>Real micro-VMs: QEMU's microvm machine, the template from PLATFORM_MICROVM_TEMPLATES, namespaces and taps, as root.</summary>
public sealed partial class MicroVmTests(MicroVmFixture fixture) : IClassFixture<MicroVmFixture>
{
    private const int SchedOther = 0;
    private const int SchedIdle = 5;
    // Only a guard against a hung test: whether a guest came up in time is the runner's boot allowance to judge.
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(5);

    [Fact]
    public async Task A_cold_booted_micro_vm_answers_its_probe_from_inside_its_namespace_with_its_own_hostname_and_id()
    {
        await using var machine = await fixture.MachineAsync(subnet: 1);

        machine.Vm = await fixture.Runner.BootAsync(machine.Spec, Timeout());

        var identity = machine.Spec.Identity;
        Assert.Equal($"platform-guest id={identity.MachineId} hostname={identity.Hostname} ip={identity.Address}", await ProbeAsync(machine.Spec));
        Assert.Contains(machine.Vm.Accelerator, new[] { "kvm", "tcg" });
        Assert.Contains($"PLATFORM-READY {identity.MachineId}", await File.ReadAllTextAsync(machine.Vm.SerialLogPath), StringComparison.Ordinal);
        Assert.Equal(identity.Mac, await NeighbourMacAsync(machine.Spec));
        AssertConfined(machine.Vm);
    }

    [Fact]
    public async Task Killing_the_qemu_process_completes_exited_with_a_reason()
    {
        await using var machine = await fixture.MachineAsync(subnet: 2);
        machine.Vm = await fixture.Runner.BootAsync(machine.Spec, Timeout());

        Process.GetProcessById(machine.Vm.ProcessId).Kill();
        var exit = await machine.Vm.Exited.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(9, exit.Signal);
        Assert.Null(exit.ExitCode);
        Assert.Contains("SIGKILL", exit.Reason, StringComparison.Ordinal);
        Assert.Contains("PLATFORM-READY", exit.SerialTail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stopping_ends_qemu_disposing_leaves_no_process_or_work_directory_and_deleting_the_namespace_leaves_no_netns()
    {
        var machine = await fixture.MachineAsync(subnet: 3);
        await using (machine)
        {
            var vm = machine.Vm = await fixture.Runner.BootAsync(machine.Spec, Timeout());
            var pid = vm.ProcessId;
            var lease = Path.Combine(fixture.Runner.Ids.Directory, fixture.Runner.Ids.HeldBy(machine.Spec.WorkDirectory)!.Slot.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.Equal(machine.Spec.WorkDirectory, File.ReadAllText(lease));

            await vm.StopAsync(TimeSpan.FromSeconds(10), Timeout());
            var exit = await vm.Exited.WaitAsync(TimeSpan.FromSeconds(1));
            await vm.DisposeAsync();

            Assert.Equal(0, exit.ExitCode);
            Assert.Equal("stopped on request", exit.Reason);
            Assert.Throws<ArgumentException>(() => Process.GetProcessById(pid));
            Assert.False(Directory.Exists(machine.Spec.WorkDirectory));
            Assert.False(File.Exists(Path.Combine(MicroVmFixture.MemoryDirectory, machine.Spec.Id + ".ram")));
            // Its host ids are free for the next QEMU or sandbox.
            Assert.False(File.Exists(lease) && File.ReadAllText(lease) == machine.Spec.WorkDirectory);
        }

        Assert.Empty(await NetworkNamespace.ListAsync(machine.Spec.Network.Name));
        await machine.Spec.Network.DeleteAsync();
    }

    [Fact]
    public async Task Two_vms_restored_from_one_snapshot_answer_on_their_own_ips_with_their_own_hostnames_and_ids()
    {
        var snapshot = await fixture.SnapshotAsync();
        await using var first = await fixture.MachineAsync(subnet: 4);
        await using var second = await fixture.MachineAsync(subnet: 5);

        var restoring = new[] { RestoreAsync(snapshot, first), RestoreAsync(snapshot, second) };
        await Task.WhenAll(restoring);

        foreach (var machine in new[] { first, second })
        {
            var identity = machine.Spec.Identity;
            Assert.Equal($"platform-guest id={identity.MachineId} hostname={identity.Hostname} ip={identity.Address}", await ProbeAsync(machine.Spec));
            Assert.Equal(identity.Mac, await NeighbourMacAsync(machine.Spec));
            Assert.Equal(snapshot.Accelerator, machine.Vm!.Accelerator);
            Assert.False(machine.Vm.Exited.IsCompleted);
            AssertConfined(machine.Vm);
        }

        Assert.NotEqual(HostIdsOf(first.Vm!), HostIdsOf(second.Vm!));
        // Each runs on its own copy of the snapshot's memory: neither can write what the next VM starts from.
        Assert.All(new[] { first, second }, m => Assert.Contains($"mem-path={MicroVmFixture.MemoryDirectory}/{m.Spec.Id}.ram,share=on", File.ReadAllText($"/proc/{m.Vm!.ProcessId}/cmdline").Replace('\0', ' '), StringComparison.Ordinal));
    }

    /// <summary>
    /// QEMU is jailed: it runs as a host id of its own (leased, not root, no account's), with no capability, in an empty
    /// root directory, under its own filter (<c>-sandbox</c>) with no_new_privs, and in a cgroup of its own: the guest's
    /// memory and QEMU's allowance, and (v1) no device but the standard ones, kvm, tun and vhost-net.
    /// </summary>
    private static void AssertConfined(MicroVm vm)
    {
        var status = File.ReadAllLines($"/proc/{vm.ProcessId}/status").Select(l => l.Split(':', 2)).ToDictionary(p => p[0], p => p[1].Trim());
        var ids = HostIdsOf(vm);
        Assert.True(ids >= IdRanges.First, $"QEMU runs as host id {ids}, not one of its own");
        Assert.Equal(Enumerable.Repeat(ids.ToString(System.Globalization.CultureInfo.InvariantCulture), 4), status["Uid"].Split('\t'));
        Assert.Equal(Enumerable.Repeat(ids.ToString(System.Globalization.CultureInfo.InvariantCulture), 4), status["Gid"].Split('\t'));
        Assert.Equal(ids.ToString(System.Globalization.CultureInfo.InvariantCulture), status["Groups"]);
        Assert.All(new[] { "CapInh", "CapPrm", "CapEff", "CapAmb" }, set => Assert.Equal("0000000000000000", status[set]));
        var root = new DirectoryInfo($"/proc/{vm.ProcessId}/root").LinkTarget;
        Assert.Equal(Path.Combine(vm.Spec.WorkDirectory, "root"), root);
        Assert.Empty(Directory.EnumerateFileSystemEntries(root!));
        Assert.Equal("2", status["Seccomp"]);
        Assert.Equal("1", status["NoNewPrivs"]);
        Assert.Contains("spawn=deny", File.ReadAllText($"/proc/{vm.ProcessId}/cmdline"), StringComparison.Ordinal);
        Assert.StartsWith("microvm-", Cgroups.MemberOf(vm.ProcessId), StringComparison.Ordinal);
        Assert.Equal(vm.CgroupId, Cgroups.MemberOf(vm.ProcessId));
        var usage = Cgroups.Detect().Usage(vm.CgroupId!)!;
        Assert.Equal((vm.Spec.MemoryMiB + MicroVmRunner.QemuOverheadMiB) * 1024L * 1024, usage.MemoryLimitBytes);
        var devices = $"/sys/fs/cgroup/devices/{Cgroups.Parent}/{vm.CgroupId}/devices.list";
        if (File.Exists(devices))
        {
            Assert.Equal(MicroVmRunner.QemuDevices.Order(StringComparer.Ordinal), File.ReadAllLines(devices).Order(StringComparer.Ordinal));
        }
    }

    private static long HostIdsOf(MicroVm vm) =>
        long.Parse(File.ReadAllLines($"/proc/{vm.ProcessId}/status").Single(l => l.StartsWith("Uid:", StringComparison.Ordinal)).Split('\t')[1], System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task A_snapshot_is_restored_only_into_its_own_shape()
    {
        var snapshot = await fixture.SnapshotAsync();
        await using var machine = await fixture.MachineAsync(subnet: 6);

        await Assert.ThrowsAsync<ArgumentException>(() => fixture.Runner.RestoreAsync(snapshot, machine.Spec with { MemoryMiB = 256 }, Timeout()));

        Assert.False(Directory.Exists(machine.Spec.WorkDirectory));
    }

    [Fact]
    public async Task A_micro_vm_whose_qemu_cannot_start_fails_with_the_reason_and_leaves_nothing_behind()
    {
        await using var machine = await fixture.MachineAsync(subnet: 7);
        await machine.Spec.Network.DeleteAsync();

        var failure = await Assert.ThrowsAsync<MicroVmException>(() => fixture.Runner.BootAsync(machine.Spec, Timeout()));

        Assert.Contains(machine.Spec.Network.Name, failure.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(machine.Spec.WorkDirectory));
        Assert.False(File.Exists(Path.Combine(MicroVmFixture.MemoryDirectory, machine.Spec.Id + ".ram")));
    }

    private static string CommandLineOf(string procDirectory)
    {
        try
        {
            return File.ReadAllText(Path.Combine(procDirectory, "cmdline"));
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task A_host_whose_kvm_never_boots_the_template_is_judged_tcg_within_the_probe_timeout_and_remembered()
    {
        var scratch = Directory.CreateTempSubdirectory("pmt-fake-qemu-").FullName;
        try
        {
            // Stands in for QEMU on a host where KVM hangs (as stock kernels do under PVM): it never prints anything.
            var hangingQemu = Path.Combine(scratch, "qemu-system-x86_64");
            // Its one argument marks it, to show that the probe leaves no such process behind.
            var marker = $"59.{Random.Shared.Next(100_000, 1_000_000)}";
            await File.WriteAllTextAsync(hangingQemu, $"#!/bin/sh\nexec sleep {marker}\n");
            File.SetUnixFileMode(hangingQemu, UnixFileMode.UserRead | UnixFileMode.UserExecute);
            var cache = Path.Combine(scratch, "accelerators.json");
            var runner = new MicroVmRunner(cache, hangingQemu) { AcceleratorProbeTimeout = TimeSpan.FromSeconds(3) };
            bool TrialRuns() => Directory.GetDirectories("/proc").Select(CommandLineOf).Contains($"sleep\0{marker}\0");
            var clock = Stopwatch.StartNew();

            var detecting = runner.DetectAcceleratorAsync(fixture.Template, Timeout());
            if (File.Exists("/dev/kvm"))
            {
                // The trial runs for as long as its probe waits (the watcher that ends it with the agent must not end it sooner).
                await Task.Delay(TimeSpan.FromSeconds(1.5));
                Assert.True(TrialRuns(), "the trial boot runs while it is probed");
            }

            var accelerator = await detecting;

            Assert.Equal("tcg", accelerator);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"judged in {clock.Elapsed}");
            Assert.Equal("tcg", await new MicroVmRunner(cache, hangingQemu) { AcceleratorProbeTimeout = TimeSpan.FromSeconds(1) }.DetectAcceleratorAsync(fixture.Template, Timeout()));
            if (File.Exists("/dev/kvm"))
            {
                Assert.Contains("\"tcg\"", await File.ReadAllTextAsync(cache), StringComparison.Ordinal);
            }

            Assert.Empty(Directory.GetDirectories(scratch, MicroVmRunner.KvmProbePrefix + "*"));
            Assert.False(TrialRuns(), "the trial boot ends with its probe");
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

    [Fact]
    public async Task Nonsense_ids_hostnames_memory_and_names_are_refused_before_anything_is_created()
    {
        await using var machine = await fixture.MachineAsync(subnet: 8);
        var spec = machine.Spec;
        // Others on this host may hold namespaces of that prefix too: only what this test adds counts.
        var namespacesBefore = await NetworkNamespace.ListAsync(MicroVmFixture.NamespacePrefix);

        await Assert.ThrowsAsync<ArgumentException>(() => fixture.Runner.BootAsync(spec with { Id = "../escape", WorkDirectory = MicroVmFixture.WorkRoot + "/escape" }, Timeout()));
        await Assert.ThrowsAsync<ArgumentException>(() => fixture.Runner.BootAsync(spec with { Identity = spec.Identity with { Hostname = "Not_A_Label" } }, Timeout()));
        await Assert.ThrowsAsync<ArgumentException>(() => fixture.Runner.BootAsync(spec with { Identity = spec.Identity with { Mac = "52:54:00:zz:00:01" } }, Timeout()));
        await Assert.ThrowsAsync<ArgumentException>(() => fixture.Runner.BootAsync(spec with { Identity = spec.Identity with { Address = IPAddress.Parse("10.9.9.9") } }, Timeout()));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => fixture.Runner.BootAsync(spec with { MemoryMiB = 32 }, Timeout()));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => fixture.Runner.BootAsync(spec with { Vcpus = 0 }, Timeout()));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => fixture.Runner.CreateSnapshotAsync(fixture.Template, 1, 32, "/dev/shm/pmt-never", Timeout()));
        await Assert.ThrowsAsync<ArgumentException>(() => NetworkNamespace.CreateAsync("pmt-../escape", "tap0", IPAddress.Parse("10.200.9.1"), 24));
        await Assert.ThrowsAsync<ArgumentException>(() => NetworkNamespace.CreateAsync("pmt-long-tap", "a-very-long-tap-name", IPAddress.Parse("10.200.9.1"), 24));

        Assert.False(Directory.Exists(spec.WorkDirectory));
        Assert.False(Directory.Exists(MicroVmFixture.WorkRoot + "/escape"));
        Assert.False(Directory.Exists("/dev/shm/pmt-never"));
        Assert.Contains(spec.Network.Name, namespacesBefore);
        Assert.Equal(namespacesBefore, await NetworkNamespace.ListAsync(MicroVmFixture.NamespacePrefix));
    }

    [Fact]
    public async Task Two_machines_activated_from_the_pool_answer_on_their_own_ips_with_their_own_hostnames_and_ids_in_namespaces_named_for_them()
    {
        var snapshot = await fixture.SnapshotAsync();
        await using var first = new PoolMachine(subnet: 11);
        await using var second = new PoolMachine(subnet: 12);
        first.Pooled = await fixture.Runner.RestoreWarmAsync(snapshot, fixture.Template, first.PoolDirectory, Timeout());
        await first.Pooled.Warmed.WaitAsync(Timeout());
        Assert.True(first.Pooled.Rehearsed.IsCompletedSuccessfully);
        Assert.Equal([SchedIdle], SchedulingPoliciesOfThreads(first.Pooled.ProcessId));
        // Activated while it still warms.
        second.Pooled = await fixture.Runner.RestoreWarmAsync(snapshot, fixture.Template, second.PoolDirectory, Timeout());

        first.Vm = await fixture.Runner.ActivateAsync(first.Pooled, first.Identity, first.NetworkName, first.WorkDirectory, Timeout());
        second.Vm = await fixture.Runner.ActivateAsync(second.Pooled, second.Identity, second.NetworkName, second.WorkDirectory, Timeout());

        foreach (var machine in new[] { first, second })
        {
            var vm = machine.Vm!;
            var identity = machine.Identity;
            Assert.Equal(machine.NetworkName, vm.Spec.Network.Name);
            Assert.Equal([machine.NetworkName], await NetworkNamespace.ListAsync(machine.NetworkName));
            Assert.Equal($"platform-guest id={identity.MachineId} hostname={identity.Hostname} ip={identity.Address}", await ProbeAsync(vm.Spec));
            Assert.Equal(identity.Mac, await NeighbourMacAsync(vm.Spec));
            Assert.Equal(machine.WorkDirectory, vm.Spec.WorkDirectory);
            Assert.Equal(vm.ProcessId.ToString(), (await File.ReadAllTextAsync(Path.Combine(machine.WorkDirectory, MicroVm.PidFileName))).Trim());
            var serial = await File.ReadAllTextAsync(vm.SerialLogPath);
            Assert.Contains("PLATFORM-WARM-DONE ", serial, StringComparison.Ordinal);
            Assert.Contains($"PLATFORM-READY {identity.MachineId}", serial, StringComparison.Ordinal);
            Assert.False(vm.Exited.IsCompleted);
            Assert.Equal([SchedOther], SchedulingPoliciesOfThreads(vm.ProcessId));
            // Its jail, its host ids' lease and its memory moved to the machine with it.
            AssertConfined(vm);
            Assert.NotNull(fixture.Runner.Ids.HeldBy(machine.WorkDirectory));
            Assert.True(File.Exists(Path.Combine(MicroVmFixture.MemoryDirectory, identity.MachineId + ".ram")));
        }

        Assert.NotEqual(HostIdsOf(first.Vm!), HostIdsOf(second.Vm!));
    }

    [Fact]
    public async Task Disposing_pooled_vms_warming_or_activated_leaves_no_qemu_namespace_or_file()
    {
        var snapshot = await fixture.SnapshotAsync();
        var idle = new PoolMachine(subnet: 13);
        var activated = new PoolMachine(subnet: 14);
        var processes = new List<int>();
        var namespaces = new List<string>();
        await using (idle)
        {
            idle.Pooled = await fixture.Runner.RestoreWarmAsync(snapshot, fixture.Template, idle.PoolDirectory, Timeout());
            processes.Add(idle.Pooled.ProcessId);
            namespaces.Add(NamespaceOfProcess(idle.Pooled.ProcessId));
            // Disposed right away: while it warms.
        }

        await using (activated)
        {
            activated.Pooled = await fixture.Runner.RestoreWarmAsync(snapshot, fixture.Template, activated.PoolDirectory, Timeout());
            activated.Vm = await fixture.Runner.ActivateAsync(activated.Pooled, activated.Identity, activated.NetworkName, activated.WorkDirectory, Timeout());
            processes.Add(activated.Vm.ProcessId);
            namespaces.Add(NamespaceOfProcess(activated.Vm.ProcessId));
            Assert.False(Directory.Exists(activated.PoolDirectory));
        }

        foreach (var pid in processes)
        {
            Assert.Throws<ArgumentException>(() => Process.GetProcessById(pid));
        }

        // A namespace ends when neither a name nor a process holds it.
        Assert.Empty(Directory.GetFiles("/var/run/netns").Select(NamespaceOfFile).Intersect(namespaces));
        Assert.Empty(Directory.GetDirectories("/proc").Select(p => Path.Combine(p, "ns", "net")).Where(File.Exists).Select(NamespaceOfFile).Intersect(namespaces));
        foreach (var directory in new[] { idle.PoolDirectory, idle.WorkDirectory, activated.PoolDirectory, activated.WorkDirectory })
        {
            Assert.False(Directory.Exists(directory), directory);
        }
    }

    [Fact]
    public async Task An_activated_vm_a_crashed_process_left_behind_is_found_by_its_pid_file_killed_and_removed()
    {
        var snapshot = await fixture.SnapshotAsync();
        await using var machine = new PoolMachine(subnet: 16);
        machine.Pooled = await fixture.Runner.RestoreWarmAsync(snapshot, fixture.Template, machine.PoolDirectory, Timeout());
        machine.Vm = await fixture.Runner.ActivateAsync(machine.Pooled, machine.Identity, machine.NetworkName, machine.WorkDirectory, Timeout());
        var pid = machine.Vm.ProcessId;

        // What the host agent does after a restart, knowing only the machine's work directory.
        await MicroVm.RemoveLeftoverAsync(machine.WorkDirectory, Timeout());

        await machine.Vm.Exited.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Throws<ArgumentException>(() => Process.GetProcessById(pid));
        Assert.False(Directory.Exists(machine.WorkDirectory));
    }

    [Fact]
    public async Task A_pooled_vm_whose_qemu_died_fails_to_activate_and_leaves_nothing_behind()
    {
        var snapshot = await fixture.SnapshotAsync();
        await using var machine = new PoolMachine(subnet: 15);
        machine.Pooled = await fixture.Runner.RestoreWarmAsync(snapshot, fixture.Template, machine.PoolDirectory, Timeout());
        await machine.Pooled.Warmed.WaitAsync(Timeout());
        Process.GetProcessById(machine.Pooled.ProcessId).Kill();
        await machine.Pooled.Exited.WaitAsync(TimeSpan.FromSeconds(10));

        await Assert.ThrowsAsync<MicroVmException>(() => fixture.Runner.ActivateAsync(machine.Pooled, machine.Identity, machine.NetworkName, machine.WorkDirectory, Timeout()));

        Assert.Empty(await NetworkNamespace.ListAsync(machine.NetworkName));
        Assert.False(Directory.Exists(machine.PoolDirectory));
        Assert.False(Directory.Exists(machine.WorkDirectory));
        await Assert.ThrowsAsync<InvalidOperationException>(() => fixture.Runner.ActivateAsync(machine.Pooled, machine.Identity, machine.NetworkName, machine.WorkDirectory, Timeout()));
    }

    private async Task RestoreAsync(MicroVmSnapshot snapshot, TestMachine machine) =>
        machine.Vm = await fixture.Runner.RestoreAsync(snapshot, machine.Spec, Timeout());

    private static async Task<string?> ProbeAsync(MicroVmSpec spec)
    {
        using var socket = await spec.Network.ConnectAsync(spec.Identity.Address, spec.Template.GuestAgentPort, Timeout());
        using var reader = new StreamReader(new NetworkStream(socket, ownsSocket: false));
        return await reader.ReadLineAsync(Timeout());
    }

    /// <summary>The MAC the namespace learned for the guest's address: the one the guest really uses.</summary>
    private static async Task<string> NeighbourMacAsync(MicroVmSpec spec)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true };
        foreach (var argument in (string[])["-n", spec.Network.Name, "neigh", "show", spec.Identity.Address.ToString()])
        {
            start.ArgumentList.Add(argument);
        }

        using var ip = Process.Start(start)!;
        var words = (await ip.StandardOutput.ReadToEndAsync()).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        await ip.WaitForExitAsync();
        var lladdr = Array.IndexOf(words, "lladdr");
        return lladdr >= 0 ? words[lladdr + 1] : "(no neighbour entry)";
    }

    /// <summary>"net:[inode]": which namespace a namespace file (a name, or a process's) stands for.</summary>
    private static string? NamespaceOfFile(string path)
    {
        try
        {
            using var handle = File.OpenHandle(path);
            return new FileInfo($"/proc/self/fd/{handle.DangerousGetHandle()}").LinkTarget;
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            return null; // The process ended meanwhile.
        }
    }

    /// <summary>The scheduling policies of a process's threads (field 41 of each thread's stat, counted after the parenthesised name).</summary>
    private static int[] SchedulingPoliciesOfThreads(int pid) => Directory.GetDirectories($"/proc/{pid}/task")
        .Select(task => File.ReadAllText(Path.Combine(task, "stat")))
        .Select(stat => int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[38]))
        .Distinct()
        .Order()
        .ToArray();

    private static string NamespaceOfProcess(int pid) => NamespaceOfFile($"/proc/{pid}/ns/net")!;

    private static CancellationToken Timeout() => new CancellationTokenSource(Patience).Token;
}

/// <summary>
/// One test's machine made from the pool, named as the host agent names its own (<c>pm-…</c>): whatever VM was started
/// for it is disposed and its namespace deleted, pass or fail.
/// </summary>
public sealed class PoolMachine(int subnet) : IAsyncDisposable
{
    private readonly string _id = "pmt-" + Guid.NewGuid().ToString("N")[..10];

    public string PoolDirectory => Path.Combine(MicroVmFixture.WorkRoot, "pool-" + _id[4..]);

    public string WorkDirectory => Path.Combine(MicroVmFixture.WorkRoot, _id);

    public string NetworkName { get; } = $"pm-{Guid.NewGuid():N}";

    public GuestIdentity Identity => new(_id, "host-" + _id[4..], IPAddress.Parse($"10.200.{subnet}.2"), 24, IPAddress.Parse($"10.200.{subnet}.1"), $"52:54:00:c8:{subnet:x2}:02");

    public PooledMicroVm? Pooled { get; set; }

    public MicroVm? Vm { get; set; }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (Vm is not null)
            {
                await Vm.DisposeAsync();
            }

            if (Pooled is not null)
            {
                await Pooled.DisposeAsync();
            }
        }
        finally
        {
            await NetworkNamespace.DeleteAsync(NetworkName);
        }
    }
}
