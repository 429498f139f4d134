using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Platform.Provisioning.Drivers.Networking;
using Platform.Provisioning.Drivers.Sandbox;

namespace Platform.Provisioning.Drivers.MicroVm;

/// <summary>
/// Runs micro-VMs: QEMU's <c>microvm</c> machine inside the VM's network namespace, plugged into its tap, with the
/// guest's memory in a file of its own (so that it can be snapshotted) and a QMP and a serial socket in its work directory.
/// A VM is handed over only once its guest said it is ready and its guest agent answered from inside the namespace.
/// Each QEMU is jailed as Firecracker's jailer does it: root opens what it needs (tap, memory, kernel, sockets, /dev/kvm)
/// with no capability but those few steps take, then QEMU changes to an empty root directory and to a host id of its own
/// (leased from <see cref="IdRanges"/>), keeping no capability, under its own seccomp filter and in a cgroup of its own.
/// </summary>
/// <param name="acceleratorCacheFile">Where the accelerator found for a QEMU and kernel is remembered across runs.</param>
/// <param name="qemu">The QEMU binary.</param>
/// <param name="memoryDirectory">
/// Where booted guests' memory files live. A tmpfs: a shared file mapping on a disk would have the kernel write the
/// guests' memory back to that disk all the time.
/// </param>
public sealed partial class MicroVmRunner(
    string acceleratorCacheFile,
    string qemu = "/usr/bin/qemu-system-x86_64",
    string memoryDirectory = "/dev/shm/platform-microvm")
{
    private const string ReadyPrefix = "PLATFORM-READY ";
    private const string AwaitingIdentity = "PLATFORM-AWAITING-IDENTITY";
    // sun_path holds 108 bytes with its terminator.
    private const int MaxSocketPath = 107;
    private static readonly TimeSpan ProbeAttemptTimeout = TimeSpan.FromSeconds(2);

    /// <summary>
    /// A guest's QEMU may use this much memory beyond the guest's own (its code, TCG's translations, buffers): the
    /// benches measure about 80 MiB.
    /// </summary>
    public const int QemuOverheadMiB = 512;

    /// <summary>
    /// The devices a QEMU may open beyond the standard ones (v1): kvm, the tun device its tap is attached through, and
    /// vhost-net. Nothing else, not the host's disks, even though QEMU runs as root.
    /// </summary>
    public static readonly IReadOnlyList<string> QemuDevices = [.. Cgroups.AllowedDevices, "c 10:232 rw", "c 10:200 rw", "c 10:238 rw"];

    /// <summary>Where each QEMU's own host id is leased: an id no account and no other sandbox or QEMU has.</summary>
    public IdRanges Ids { get; init; } = new();

    /// <summary>Tells restored guests the time: their clocks stopped when the snapshot was taken.</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;

    /// <summary>Each QEMU runs in a cgroup of its own under <c>platform/</c>: memory, CPU, threads and devices.</summary>
    public Cgroups Cgroups { get; init; } = Cgroups.Detect();

    /// <summary>How long a guest may take from QEMU's start to answering its probe: unless set, what <see cref="Allowance"/> derives.</summary>
    public TimeSpan? ReadyTimeout { get; init; }

    /// <summary>What boots on this host have shown they take: the ready timeout when none is set.</summary>
    public BootAllowance Allowance { get; init; } = new();

    /// <summary>How long a trial boot under KVM may take before KVM is judged unusable on this host.</summary>
    public TimeSpan AcceleratorProbeTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Boots the template's kernel with the guest's identity on its command line.</summary>
    public async Task<MicroVm> BootAsync(MicroVmSpec spec, CancellationToken cancellationToken)
    {
        Validate(spec);
        var accelerator = await DetectAcceleratorAsync(spec.Template, cancellationToken);
        var memoryFile = MemoryFileOf(spec.Id);
        CreateWorkDirectory(spec.WorkDirectory);
        var vm = Start(spec, accelerator, memoryFile, new QemuLaunch(
            spec.Template.CommandLine + " " + spec.Identity.ToKernelArguments() + (spec.DiskPath is null ? "" : " " + DiskArgument)
                + (spec.Template.Image is null ? "" : " " + ImageRootArgument),
            MemoryFile: memoryFile,
            SharedMemory: true,
            IncomingState: null));
        return await ReadyOrGoneAsync(vm, async token =>
        {
            using var serial = await SerialConsole.ConnectAsync(vm.SerialSocketPath, vm.SerialLogPath, vm.Exited, token);
            await vm.QmpAsync(token);
            await WaitUntilReadyAsync(vm, serial, token);
        }, cancellationToken);
    }

    /// <summary>
    /// Starts <paramref name="spec"/> from a snapshot: QEMU takes the saved device state, the guest resumes where it
    /// waited for its identity, reads this one from the serial console and configures itself with it.
    /// </summary>
    public async Task<MicroVm> RestoreAsync(MicroVmSnapshot snapshot, MicroVmSpec spec, CancellationToken cancellationToken)
    {
        Validate(spec);
        ValidateSnapshotOf(snapshot, spec.Template, spec.Vcpus, spec.MemoryMiB, nameof(spec));

        var memoryFile = MemoryFileOf(spec.Id);
        CreateWorkDirectory(spec.WorkDirectory);
        var vm = Start(spec, snapshot.Accelerator, memoryFile, Restoring(snapshot, memoryFile));
        return await ReadyOrGoneAsync(vm, async token =>
        {
            using var serial = await ResumeAsync(vm, snapshot, token);
            await serial.WriteLineAsync(IdentityLine(spec.Identity), token);
            await WaitUntilReadyAsync(vm, serial, token);
        }, cancellationToken);
    }

    /// <summary>
    /// The micro-VM <paramref name="spec"/> describes, if a previous process of the agent started it and it still runs: the
    /// pid file in its work directory names a running QEMU, and QEMU answers on its QMP socket that the guest runs. Null
    /// when it does not (the caller removes what is left). <paramref name="memoryFile"/> is the guest's own memory file if
    /// it has one (disposing the VM removes it).
    /// </summary>
    public async Task<MicroVm?> AdoptAsync(MicroVmSpec spec, string? memoryFile, CancellationToken cancellationToken)
    {
        var pidFile = Path.Combine(spec.WorkDirectory, MicroVm.PidFileName);
        if (!File.Exists(pidFile) || !int.TryParse((await File.ReadAllTextAsync(pidFile, cancellationToken)).Trim(), out var pid)
            || Processes.HostProcess.Find(pid) is not { } qemu || !qemu.Name.StartsWith("qemu-system", StringComparison.Ordinal))
        {
            return null;
        }

        var arguments = qemu.CommandLine;
        var accel = arguments.ToList().IndexOf("-accel");
        var accelerator = accel >= 0 && accel + 1 < arguments.Count ? arguments[accel + 1] : "tcg";
        var vm = MicroVm.Adopted(spec, accelerator, qemu, memoryFile, Cgroups.MemberOf(pid) is { } cgroup ? new MicroVmCgroup(Cgroups, cgroup) : null, Ids);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            var qmp = await vm.QmpAsync(timeout.Token);
            var status = (await qmp.ExecuteAsync("query-status", null, timeout.Token))?["status"]?.GetValue<string>();
            if (status is "paused" or "postmigrate")
            {
                // The last agent died while the VM was stopped for a checkpoint or a pause: it runs on as it was (a pause asked
                // for is asked again).
                await ResumeInPlaceAsync(vm, qmp);
                status = (await qmp.ExecuteAsync("query-status", null, timeout.Token))?["status"]?.GetValue<string>();
            }

            if (status == "running")
            {
                return vm;
            }
        }
        catch (Exception exception) when (exception is IOException or System.Net.Sockets.SocketException or OperationCanceledException or InvalidOperationException)
        {
            // A QEMU that does not answer is no machine to adopt.
        }

        await vm.DisposeAsync();
        return null;
    }

    private static void ValidateSnapshotOf(MicroVmSnapshot snapshot, MicroVmTemplate template, int vcpus, int memoryMiB, string paramName)
    {
        if (snapshot.TemplateVersion != template.Version || snapshot.Vcpus != vcpus || snapshot.MemoryMiB != memoryMiB)
        {
            throw new ArgumentException(
                $"The snapshot is of template {snapshot.TemplateVersion} with {snapshot.Vcpus} vCPUs and {snapshot.MemoryMiB} MiB; "
                + $"asked for are {template.Version} with {vcpus} vCPUs and {memoryMiB} MiB.", paramName);
        }
    }

    /// <summary>Has a QEMU started with <c>-incoming defer</c> take the snapshot's device state and run; returns its serial console.</summary>
    private static async Task<SerialConsole> ResumeAsync(MicroVm vm, MicroVmSnapshot snapshot, CancellationToken cancellationToken)
    {
        var qmp = await vm.QmpAsync(cancellationToken);
        var serial = await SerialConsole.ConnectAsync(vm.SerialSocketPath, vm.SerialLogPath, vm.Exited, cancellationToken);
        try
        {
            await IgnoreSharedMemoryAsync(qmp, cancellationToken);
            // QEMU was started with the state file open on descriptor 3 (it may not spawn a reader of its own).
            await qmp.ExecuteAsync("migrate-incoming", new { uri = "fd:" + IncomingStateDescriptor }, cancellationToken);
            await WaitForRunStateAsync(qmp, "paused", cancellationToken);
            await qmp.ExecuteAsync("cont", null, cancellationToken);
            return serial;
        }
        catch
        {
            serial.Dispose();
            throw;
        }
    }

    /// <summary>The line a guest restored from a snapshot takes its identity from: with the time, its clock stopped when the snapshot was taken.</summary>
    private string IdentityLine(GuestIdentity identity) => $"{identity.ToKernelArguments()} platform.time={Clock.GetUtcNow().ToUnixTimeSeconds()}";

    /// <summary>
    /// A VM restored from <paramref name="snapshot"/> runs on its own sparse copy of the snapshot's memory (only the pages
    /// the guest had touched take room), made as it starts: QEMU keeps its memory file open for writing, and a QEMU taken
    /// over by its guest must not be able to change what other VMs start from.
    /// </summary>
    private static QemuLaunch Restoring(MicroVmSnapshot snapshot, string memoryFile, bool background = false) =>
        new(snapshot.CommandLine, memoryFile, SharedMemory: true, IncomingState: snapshot.StatePath, Background: background, CopyMemoryFrom: snapshot.MemoryPath);

    private string MemoryFileOf(string vmId)
    {
        Directory.CreateDirectory(memoryDirectory);
        var memoryFile = Path.Combine(memoryDirectory, vmId + ".ram");
        return File.Exists(memoryFile)
            ? throw new InvalidOperationException($"A micro-VM {vmId} runs already (its memory file {memoryFile} exists).")
            : memoryFile;
    }

    private MicroVm Start(MicroVmSpec spec, string accelerator, string? memoryFileToDelete, QemuLaunch launch)
    {
        var start = new ProcessStartInfo("/bin/sh")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // sh becomes ip netns exec, which becomes QEMU (exec, through chrt and setpriv too), so the process we hold is QEMU
        // itself, already inside the namespace; on the way sh copies a restored guest's memory and opens the snapshot's
        // state on descriptor 3 for it. First it joins the VM's cgroups, so that neither QEMU nor the copy runs outside them.
        string[] scheduling = launch.Background ? ["chrt", "--idle", "0"] : [];
        var copy = launch.CopyMemoryFrom is null ? "" : "cp --sparse=always \"$PLATFORM_MEMORY_FROM\" \"$PLATFORM_MEMORY_TO\" || exit 125; ";
        var run = launch.IncomingState is null ? "exec \"$@\"" : $"exec \"$@\" {IncomingStateDescriptor}<\"$0\"";
        var script = $"for procs in $PLATFORM_CGROUP_PROCS; do echo $$ > \"$procs\" || exit 125; done; {copy}{run}";
        var jail = launch.MakesSnapshot ? null : new QemuJail(Ids.Lease(spec.WorkDirectory), Path.Combine(spec.WorkDirectory, JailRoot));
        string[] privileges = jail is null ? [] : ["setpriv", "--no-new-privs", "--inh-caps=-all", "--bounding-set", JailCapabilities];
        foreach (var argument in (string[])["-c", script, launch.IncomingState ?? "qemu", "ip", "netns", "exec", spec.Network.Name, .. scheduling, .. privileges, qemu, .. QemuArguments(spec, accelerator, launch, jail)])
        {
            start.ArgumentList.Add(argument);
        }

        if (launch.CopyMemoryFrom is { } from)
        {
            start.Environment["PLATFORM_MEMORY_FROM"] = from;
            start.Environment["PLATFORM_MEMORY_TO"] = launch.MemoryFile;
        }

        if (jail is not null)
        {
            Directory.CreateDirectory(jail.Root);
        }

        var cgroup = "microvm-" + Guid.NewGuid().ToString("N")[..12];
        Process process;
        try
        {
            var procs = Cgroups.Create(cgroup, new SandboxLimits(spec.MemoryMiB + QemuOverheadMiB, MaxQemuThreads, spec.Vcpus + 1), QemuDevices);
            // Named in its work directory too: an agent that dies before QEMU writes its pid file leaves the cgroup findable.
            File.WriteAllText(Path.Combine(spec.WorkDirectory, MicroVm.CgroupFileName), cgroup);
            start.Environment["PLATFORM_CGROUP_PROCS"] = string.Join(' ', procs);
            process = Process.Start(start)!;
        }
        catch
        {
            Cgroups.RemoveAsync(cgroup).GetAwaiter().GetResult();
            Ids.Release(spec.WorkDirectory);
            Directory.Delete(spec.WorkDirectory, recursive: true);
            throw;
        }

        process.StandardInput.Close();
        return new MicroVm(spec, accelerator, process, memoryFileToDelete, new MicroVmCgroup(Cgroups, cgroup), Ids);
    }

    private static IEnumerable<string> QemuArguments(MicroVmSpec spec, string accelerator, QemuLaunch launch, QemuJail? jail)
    {
        // No PIT, PIC or option ROMs: fewer devices start faster, and the kernel's command line tells it to trust the TSC.
        // The RTC stays: without one the kernel waits for it twice, about two seconds of an emulated boot.
        string[] machine =
        [
            "-M", "microvm,x-option-roms=off,pit=off,pic=off,rtc=on,isa-serial=on,memory-backend=ram",
            "-accel", accelerator,
            // KVM runs the host's CPU model; TCG emulates the richest it can.
            "-cpu", accelerator == "kvm" ? "host" : "max",
            "-m", $"{spec.MemoryMiB}M",
            "-smp", spec.Vcpus.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-object", $"memory-backend-file,id=ram,size={spec.MemoryMiB}M,mem-path={launch.MemoryFile},share={(launch.SharedMemory ? "on" : "off")}",
            "-kernel", spec.Template.KernelPath,
            "-initrd", spec.Template.InitramfsPath,
            "-append", launch.CommandLine,
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-netdev", $"tap,id=net0,ifname={spec.Network.Tap},script=no,downscript=no",
            "-device", $"virtio-net-device,netdev=net0,mac={spec.Identity.Mac}",
            "-chardev", $"socket,id=serial0,path={Path.Combine(spec.WorkDirectory, "serial.sock")},server=on,wait=off,logfile={Path.Combine(spec.WorkDirectory, "serial.log")},logappend=on",
            "-serial", "chardev:serial0",
            // The guest agent's channel: a virtio-serial port whose other end is a socket only this host reaches.
            "-chardev", $"socket,id=agent0,path={Path.Combine(spec.WorkDirectory, "agent.sock")},server=on,wait=off",
            "-device", "virtio-serial-device,max_ports=2",
            "-device", "virtserialport,chardev=agent0,name=platform.agent",
            .. DriveArguments(spec),
            "-qmp", $"unix:{Path.Combine(spec.WorkDirectory, "qmp.sock")},server=on,wait=off",
            // Finds the VM's QEMU after this process is gone (a crash), whatever its command line says.
            "-pidfile", Path.Combine(spec.WorkDirectory, MicroVm.PidFileName),
            // QEMU's own seccomp filter: no obsolete calls, no new processes, no scheduling or affinity of its own. A VM that
            // makes a snapshot (no tenant code in it) spawns the shell that writes it out.
            "-sandbox", $"on,obsolete=deny,elevateprivileges={(jail is null ? "deny" : "allow")},spawn={(launch.MakesSnapshot ? "allow" : "deny")},resourcecontrol=deny",
        ];
        // The jail: once everything is open, QEMU changes root to an empty directory and changes to its own ids. QEMU installs
        // its filter before that, so the filter must let it call setuid and setgid that once; afterwards it holds no
        // capability, so those calls can only ever name the ids it has.
        string[] jailed = jail is null ? [] : ["-chroot", jail.Root, "-runas", FormattableString.Invariant($"{jail.Ids.HostId}:{jail.Ids.HostId}")];
        return launch.Incoming ? [.. machine, .. jailed, "-incoming", "defer"] : [.. machine, .. jailed];
    }

    /// <summary>What tells the template's init that the guest runs on its disk.</summary>
    private const string DiskArgument = "platform.disk=vda";

    /// <summary>What tells it that the disk holds an image's root: its own /bin and /lib stay, the guest's tools go to /.platform.</summary>
    private const string ImageRootArgument = "platform.image=1";

    /// <summary>
    /// The disk as a virtio-blk drive: raw, opened by QEMU before it changes root, with the guest's discards passed on so
    /// that what it deletes gives the host its room back. Not auto-read-only (-drive's default): a pause or checkpoint
    /// hands the drive over read-only, which would have QEMU open the file again by its path, out of reach in its jail.
    /// </summary>
    private static string[] DriveArguments(MicroVmSpec spec) => spec.DiskPath is not { } disk ? [] :
    [
        "-drive", $"id=disk0,file={disk},format=raw,if=none,auto-read-only=off,discard=unmap,detect-zeroes=unmap",
        "-device", "virtio-blk-device,drive=disk0",
    ];

    /// <summary>
    /// Runs <paramref name="bringUp"/> within the ready timeout; if it fails, is cancelled or QEMU exits, the VM is
    /// disposed (QEMU killed, work directory gone) and the failure carries what the guest printed.
    /// </summary>
    /// <param name="isBoot">Whether it took a boot's time (a start from a snapshot's, a cold boot's), which the allowance learns from; a resume does not.</param>
    private async Task<MicroVm> ReadyOrGoneAsync(MicroVm vm, Func<CancellationToken, Task> bringUp, CancellationToken cancellationToken, bool isBoot = true)
    {
        var readyTimeout = ReadyTimeout ?? Allowance.For(vm.Accelerator);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(readyTimeout);
        var clock = Stopwatch.StartNew();
        try
        {
            var work = bringUp(deadline.Token);
            if (await Task.WhenAny(work, vm.Exited) == vm.Exited)
            {
                var exit = await vm.Exited;
                throw new MicroVmException($"Micro-VM {vm.Id} ended before it was ready: {exit.Reason}.", exit.SerialTail);
            }

            await work;
            if (isBoot)
            {
                Allowance.Observe(vm.Accelerator, clock.Elapsed, Allowance.LoadPerCore());
            }

            return vm;
        }
        catch (Exception exception)
        {
            // A closed socket is often the first sign that QEMU died; its exit says why.
            await Task.WhenAny(vm.Exited, Task.Delay(200, CancellationToken.None));
            var tail = SerialConsole.Tail(vm.SerialLogPath);
            var errors = vm.Errors;
            var exitReason = vm.Exited.IsCompletedSuccessfully ? vm.Exited.Result.Reason : null;
            await vm.DisposeAsync();
            if (exception is MicroVmException || cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            var why = exitReason is not null ? $"it ended: {exitReason}"
                : exception is OperationCanceledException ? $"not ready within {readyTimeout.TotalSeconds:0.#} s"
                : exception.Message;
            throw new MicroVmException($"Micro-VM {vm.Id} did not come up: {why}{(errors.Length > 0 ? $" (QEMU: {errors})" : "")}", tail, exception);
        }
    }

    /// <summary>Ready means: the guest printed that it is, and its agent answers with the identity it was given.</summary>
    private static async Task WaitUntilReadyAsync(MicroVm vm, SerialConsole serial, CancellationToken cancellationToken)
    {
        await serial.WaitForLineAsync(ReadyPrefix + vm.Spec.Identity.MachineId, cancellationToken);
        await ProbeAsync(vm.Spec, cancellationToken);
    }

    /// <summary>Returns once the guest agent answers, from inside the VM's namespace, with the identity in <paramref name="spec"/>.</summary>
    private static async Task ProbeAsync(MicroVmSpec spec, CancellationToken cancellationToken)
    {
        var identity = spec.Identity;
        string? lastAnswer = null;
        while (true)
        {
            // A lost first SYN would otherwise wait for the kernel's retransmission, a second or more.
            using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            attempt.CancelAfter(ProbeAttemptTimeout);
            try
            {
                using var socket = await spec.Network.ConnectAsync(identity.Address, spec.Template.GuestAgentPort, attempt.Token);
                using var reader = new StreamReader(new NetworkStream(socket, ownsSocket: false));
                lastAnswer = await reader.ReadLineAsync(attempt.Token);
                if (lastAnswer == identity.AgentGreeting)
                {
                    return;
                }
            }
            catch (Exception exception) when (exception is SocketException or IOException
                || (exception is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                // The agent is not listening yet, or this attempt was lost.
            }
            catch (OperationCanceledException) when (lastAnswer is not null)
            {
                throw new InvalidOperationException($"its guest agent at {identity.Address} answered '{lastAnswer}', not '{identity.AgentGreeting}'");
            }

            await Task.Delay(5, cancellationToken);
        }
    }

    private static Task IgnoreSharedMemoryAsync(QmpClient qmp, CancellationToken cancellationToken) =>
        // Guest memory shared with a file is not copied into the migration stream: the file is the memory.
        qmp.ExecuteAsync("migrate-set-capabilities", new { capabilities = new[] { new { capability = "x-ignore-shared", state = true } } }, cancellationToken);

    private static async Task WaitForRunStateAsync(QmpClient qmp, string state, CancellationToken cancellationToken)
    {
        while ((await qmp.ExecuteAsync("query-status", null, cancellationToken))?["status"]?.GetValue<string>() != state)
        {
            await Task.Delay(2, cancellationToken);
        }
    }

    /// <summary>The empty directory in a VM's work directory that its QEMU changes root to.</summary>
    private const string JailRoot = "root";

    /// <summary>
    /// The only capabilities a jailed QEMU starts with, as root: to attach to its tap (net_admin), then to change root and
    /// ids (sys_chroot, setuid, setgid), after which it has none. No dac_override: what it opens is root's own.
    /// </summary>
    private const string JailCapabilities = "-all,+net_admin,+sys_chroot,+setuid,+setgid";

    /// <summary>QEMU's threads: a few per vCPU and its I/O pool, with room to spare.</summary>
    private const int MaxQemuThreads = 512;

    /// <summary>The descriptor a restoring QEMU reads its snapshot's device state from.</summary>
    private const int IncomingStateDescriptor = 3;

    /// <summary>For QEMU's exec: migration URIs, which it hands to /bin/sh -c.</summary>
    private static string ShellQuote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private static void Validate(MicroVmSpec spec) => Validate(spec, spec.Network.HostAddress, spec.Network.PrefixLength);

    /// <summary>Checks <paramref name="spec"/> as if its tap were at <paramref name="hostAddress"/>/<paramref name="prefixLength"/>.</summary>
    private static void Validate(MicroVmSpec spec, IPAddress hostAddress, int prefixLength)
    {
        if (!SafeId().IsMatch(spec.Id))
        {
            throw new ArgumentException("A micro-VM id is 1 to 64 letters, digits, '-' or '_'.", nameof(spec));
        }

        ValidateShape(spec.Vcpus, spec.MemoryMiB);
        spec.Identity.Validate();
        if (!Path.IsPathFullyQualified(spec.WorkDirectory)
            || Path.Combine(spec.WorkDirectory, "serial.sock").Length > MaxSocketPath
            || spec.WorkDirectory.Contains(',', StringComparison.Ordinal))
        {
            // QEMU's option syntax takes ',' as a separator, and unix sockets have a short path limit.
            throw new ArgumentException($"A micro-VM's work directory is an absolute path of at most {MaxSocketPath - 12} characters without ','.", nameof(spec));
        }

        if (spec.Template.Image is not null && spec.DiskPath is null)
        {
            throw new ArgumentException($"A micro-VM of template {spec.Template.Name} runs on a copy of its image's root: it needs a disk.", nameof(spec));
        }

        if (spec.DiskPath is { } disk && (!Path.IsPathFullyQualified(disk) || disk.Contains(',', StringComparison.Ordinal) || !File.Exists(disk)))
        {
            throw new ArgumentException($"A micro-VM's disk is an existing file named by an absolute path without ',': {disk}.", nameof(spec));
        }

        if (!OnSameSubnet(spec.Identity.Address, hostAddress, prefixLength))
        {
            throw new ArgumentException($"The guest's address {spec.Identity.Address} is not on its tap's subnet {hostAddress}/{prefixLength}.", nameof(spec));
        }
    }

    private static void ValidateShape(int vcpus, int memoryMiB)
    {
        if (vcpus is < 1 or > 64)
        {
            throw new ArgumentOutOfRangeException(nameof(vcpus), vcpus, "A micro-VM has 1 to 64 vCPUs.");
        }

        if (memoryMiB is < 64 or > 1024 * 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(memoryMiB), memoryMiB, "A micro-VM has 64 MiB to 1 TiB of memory.");
        }
    }

    private static bool OnSameSubnet(IPAddress a, IPAddress b, int prefixLength)
    {
        var mask = prefixLength == 0 ? 0u : uint.MaxValue << (32 - prefixLength);
        return (ToUInt32(a) & mask) == (ToUInt32(b) & mask);
    }

    private static uint ToUInt32(IPAddress address) => System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(address.GetAddressBytes());

    private static void CreateWorkDirectory(string directory)
    {
        // Disposing a VM deletes its work directory: it must be the VM's alone.
        if (Directory.Exists(directory) && Directory.EnumerateFileSystemEntries(directory).Any())
        {
            throw new InvalidOperationException($"The work directory {directory} is in use.");
        }

        Directory.CreateDirectory(directory);
    }

    /// <summary>
    /// How to start one QEMU. <paramref name="IncomingState"/>: the snapshot's device state, which it is given open on
    /// descriptor 3 and restores when told to (<c>-incoming defer</c>). <paramref name="CopyMemoryFrom"/>: the snapshot's
    /// memory, copied into <paramref name="MemoryFile"/> first. <paramref name="Background"/>: it runs only on CPU time
    /// nothing else wants (SCHED_IDLE), as work done ahead of need. <paramref name="MakesSnapshot"/>: a VM that runs no
    /// tenant code and writes its state out through a shell (QEMU 7.2 migrates to a file only through <c>exec:</c>), so it is
    /// not jailed; every other QEMU is, and is forbidden to spawn anything.
    /// </summary>
    private sealed record QemuLaunch(
        string CommandLine,
        string MemoryFile,
        bool SharedMemory,
        string? IncomingState,
        bool Background = false,
        bool MakesSnapshot = false,
        string? CopyMemoryFrom = null)
    {
        public bool Incoming => IncomingState is not null;
    }

    /// <summary>A QEMU's own host ids and the empty directory it changes root to.</summary>
    private sealed record QemuJail(IdRange Ids, string Root);

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex SafeId();
}
