using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Platform.Contracts.Provisioning;
using Platform.HostAgent.Networking;
using Platform.HostAgent.Telemetry;
using Platform.Provisioning.Drivers.Disks;
using Platform.Provisioning.Drivers.Guests;
using Platform.Provisioning.Drivers.MicroVm;
using Platform.Provisioning.Drivers.Templates;
using Platform.Provisioning.Drivers.Networking;

namespace Platform.HostAgent.Drivers;

/// <summary>
/// Micro-VMs: QEMU's microvm machine in a network namespace of the machine's own, booted cold or restored
/// from a ready snapshot of its template and shape (the snapshot's guest waits for an identity, so every
/// restored machine takes its own address, MAC, hostname and id before it reports ready). Per snapshot a few
/// VMs are kept restored and warmed ahead (a pool): a machine takes one when there is one, which spares it
/// QEMU's start and the guest's first run of everything under TCG; else the one being warmed if it is nearly
/// warm; else it restores one of its own (as fast as waiting for a warm one that has far to go, and it uses a
/// CPU the refill leaves).
/// </summary>
public sealed class MicroVmDriver(
    MicroVmRunner runner,
    TemplateShelf shelf,
    IReadOnlyList<MachineShape> snapshotShapes,
    int poolSize,
    LocalAddresses addresses,
    TenantNetworks networks,
    string runPath,
    string pausedPath,
    string disksPath,
    HostSnapshots snapshots,
    ILogger logger) : IMachineDriver
{
    private const string Tap = "tap0";
    private static readonly TimeSpan FirstRefillBackoff = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan LastRefillBackoff = TimeSpan.FromMinutes(5);
    private readonly ConcurrentDictionary<SnapshotKey, MicroVmSnapshot> _snapshots = new();
    /// <summary>Per snapshot, its pooled VMs: warm ones, and at most one (of all pools) still warming.</summary>
    private readonly Dictionary<SnapshotKey, List<Pooled>> _pools = [];
    private readonly SemaphoreSlim _refillWanted = new(0);
    private TimeSpan _refillBackoff = FirstRefillBackoff;
    private bool _shutDown;
    private string? _accelerator;

    public DriverCapacity Capacity { get; } = new("microvm", "microvm", MaxVcpus: Environment.ProcessorCount, MinMemoryMiB: 64, MaxMemoryMiB: 16 * 1024, MaxDiskMiB: MaxDiskMiB);

    /// <summary>The largest disk a micro-VM gets (its host's free room is placement's concern).</summary>
    public const int MaxDiskMiB = 1024 * 1024;

    public string? Accelerator => _accelerator;

    public IReadOnlyList<TemplateOnHost> Templates => shelf.MicroVm
        .Select(t => new TemplateOnHost(t.Name, t.Version, t.Image is null ? "microvm" : ImageTemplate.Kind, t.Sha256,
            _snapshots.Keys.Where(k => k.Version == t.Version).Select(k => new MachineShape(k.Vcpus, k.MemoryMiB, 0)).OrderBy(s => s.MemoryMiB).ToList(),
            t.Image?.RootImageMiB ?? 0))
        .ToList();

    private string SnapshotRoot => Path.Combine(runPath, "snapshots");

    private string PoolRoot => Path.Combine(runPath, "pool");

    /// <summary>
    /// Removes the pooled VMs a previous run left (it crashed), finds out which accelerator works here, then makes the
    /// snapshots machines of the configured shapes start from.
    /// </summary>
    public async Task PrepareAsync(CancellationToken cancellationToken)
    {
        foreach (var leftover in Directory.Exists(PoolRoot) ? Directory.GetDirectories(PoolRoot) : [])
        {
            await runner.RemoveLeftoverPooledAsync(leftover, cancellationToken);
        }

        // A template built from an image boots onto a disk each time: there is nothing of it to keep restored.
        foreach (var template in shelf.MicroVm.Where(t => t.Image is null))
        {
            _accelerator = await runner.DetectAcceleratorAsync(template, cancellationToken);
            foreach (var shape in snapshotShapes)
            {
                var directory = Path.Combine(SnapshotRoot, $"{template.Version}-{shape.Vcpus}x{shape.MemoryMiB}");
                try
                {
                    // A previous run that died while it made this snapshot left its QEMU and namespace: they go with the directory.
                    await runner.RemoveUnfinishedSnapshotAsync(directory, cancellationToken);
                    var snapshot = await runner.CreateSnapshotAsync(template, shape.Vcpus, shape.MemoryMiB, directory, cancellationToken);
                    _snapshots[new(template.Version, shape.Vcpus, shape.MemoryMiB)] = snapshot;
                    logger.LogInformation("Snapshot of {Template}@{Version} for {Vcpus} vCPU / {MemoryMiB} MiB ready", template.Name, template.Version, shape.Vcpus, shape.MemoryMiB);
                }
                catch (Exception exception) when (exception is MicroVmException or IOException or InvalidOperationException)
                {
                    logger.LogError(exception, "No snapshot of {Template}@{Version} for {Vcpus} vCPU / {MemoryMiB} MiB: machines of that shape boot cold",
                        template.Name, template.Version, shape.Vcpus, shape.MemoryMiB);
                }
            }
        }
    }

    public async Task<IRunningMachine> LaunchAsync(LaunchMachine launch, CancellationToken cancellationToken)
    {
        var template = shelf.MicroVm.FirstOrDefault(t => t.Name == launch.Template.Name && t.Version == launch.Template.Version)
            ?? throw new LaunchFailedException($"this host does not hold template {launch.Template.Name}@{launch.Template.Version}");
        var attachment = launch.Network ?? addresses.For(launch.MachineId);
        var identity = new GuestIdentity(launch.MachineId.ToString("N"), launch.Name, IPAddress.Parse(attachment.Address), attachment.PrefixLength,
            IPAddress.Parse(attachment.Gateway), attachment.Mac);
        var workDirectory = WorkDirectoryOf(launch.MachineId);
        await NetworkNamespace.DeleteAsync(attachment.Namespace);
        if (Directory.Exists(workDirectory))
        {
            Directory.Delete(workDirectory, recursive: true);
        }

        if (launch.FromSnapshot is { } machineSnapshot)
        {
            return await CloneAsync(launch, template, MicroVmSnapshot.Load(snapshots.LaunchDirectoryOf(machineSnapshot)), identity, attachment, workDirectory, cancellationToken);
        }

        if (launch.Shape.DiskMiB > 0 || template.Image is not null)
        {
            // Its disk, kept from its last run if it had one (on an image's template, a copy of the image's root): the pool's
            // VMs have none, so it boots (the template's init moves onto the disk).
            await EnsureDiskAsync(launch, template.Image, cancellationToken);
            return await StartAsync(launch, template, identity, attachment, workDirectory, "cold", spec => runner.BootAsync(spec, cancellationToken), withDisk: true);
        }

        var key = new SnapshotKey(template.Version, launch.Shape.Vcpus, launch.Shape.MemoryMiB);
        var fromSnapshot = launch.Boot != "cold" && _snapshots.TryGetValue(key, out var snapshot) ? snapshot : null;
        if (fromSnapshot is not null && TakePooled(key) is { } pooled)
        {
            // The refill only takes CPU time this launch leaves: it may as well start now.
            _refillWanted.Release();
            try
            {
                var vm = await runner.ActivateAsync(pooled, identity, attachment.Namespace, workDirectory, cancellationToken);
                return await JoinSegmentAsync(launch, new RunningMicroVm(runner, vm, vm.Spec.Network, attachment, "snapshot", PausedDirectoryOf(launch.MachineId)));
            }
            catch (MicroVmException failed)
            {
                logger.LogWarning(failed, "A pooled micro-VM did not become machine {MachineId}; restoring one for it", launch.MachineId);
            }
            catch (ArgumentException invalid)
            {
                throw new LaunchFailedException($"the micro-VM cannot be made: {invalid.Message}", invalid);
            }
            finally
            {
                // Left to dispose only if activating it never started.
                await pooled.DisposeAsync();
            }
        }

        return await StartAsync(launch, template, identity, attachment, workDirectory, fromSnapshot is null ? "cold" : "snapshot",
            spec => fromSnapshot is not null ? runner.RestoreAsync(fromSnapshot, spec, cancellationToken) : runner.BootAsync(spec, cancellationToken));
    }

    /// <summary>
    /// A machine started from another's snapshot: a clone of it in the machine's own namespace, which takes the machine's
    /// identity before it counts as up (see <see cref="MicroVmRunner.CloneAsync"/>).
    /// </summary>
    private async Task<IRunningMachine> CloneAsync(
        LaunchMachine launch, MicroVmTemplate template, MicroVmSnapshot image, GuestIdentity identity, NetworkAttachment attachment, string workDirectory, CancellationToken cancellationToken)
    {
        if (image.HasDisk)
        {
            // Its own copy of the disk as the snapshot holds it.
            var disk = DiskOf(launch.MachineId);
            Directory.CreateDirectory(disksPath);
            try
            {
                await DiskImage.CopySparseAsync(image.DiskPath, disk + ".making", cancellationToken);
                File.Move(disk + ".making", disk, overwrite: true);
            }
            catch (IOException failed)
            {
                DiskImage.Delete(disk);
                throw new LaunchFailedException($"the snapshot's disk could not be copied: {failed.Message}", failed);
            }
        }

        return await StartAsync(launch, template, identity, attachment, workDirectory, "clone", spec => runner.CloneAsync(image, spec, cancellationToken), withDisk: image.HasDisk);
    }

    /// <summary>
    /// The machine's disk: made at its first launch (and after a fresh one), kept across its stops and starts. On a template
    /// built from an image it is a copy of the image's root, grown to the machine's <c>diskMiB</c> if that is larger.
    /// </summary>
    private async Task EnsureDiskAsync(LaunchMachine launch, ImageTemplate? image, CancellationToken cancellationToken)
    {
        try
        {
            if (image is not null && launch.Shape.DiskMiB < image.RootImageMiB)
            {
                // The disk is exactly what the tenant's quota and the host count: never silently more.
                throw new LaunchFailedException(
                    $"template {image.Name} runs on a copy of its image's root, {image.RootImageMiB} MiB: the machine needs diskMiB of at least that, not {launch.Shape.DiskMiB}");
            }

            if (image is not null)
            {
                await DiskImage.EnsureCopyOfAsync(DiskOf(launch.MachineId), image.RootImagePath, launch.Shape.DiskMiB, cancellationToken);
            }
            else
            {
                await DiskImage.EnsureAsync(DiskOf(launch.MachineId), launch.Shape.DiskMiB);
            }
        }
        catch (Exception failed) when (failed is IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new LaunchFailedException($"the micro-VM's disk could not be made: {failed.Message}", failed);
        }
    }

    /// <summary>Where the machine's disk lives: on the host's disk, among the agent's state, until the machine is torn down or launched fresh.</summary>
    private string DiskOf(Guid machineId) => Path.Combine(disksPath, $"{machineId:N}.img");

    private MicroVmSpec SpecOf(LaunchMachine launch, MicroVmTemplate template, GuestIdentity identity, NetworkNamespace network, string workDirectory, bool withDisk) =>
        new(launch.MachineId.ToString("N"), template, launch.Shape.Vcpus, launch.Shape.MemoryMiB, identity, network, workDirectory)
        {
            DiskPath = withDisk ? DiskOf(launch.MachineId) : null,
        };

    /// <summary>
    /// Starts the machine's VM (<paramref name="start"/>: a boot, a restore or a clone) in a namespace of its own, and joins
    /// it to its tenant's segment; on failure the namespace goes and the reason is a launch's.
    /// </summary>
    private async Task<IRunningMachine> StartAsync(
        LaunchMachine launch, MicroVmTemplate template, GuestIdentity identity, NetworkAttachment attachment, string workDirectory, string bootedFrom,
        Func<MicroVmSpec, Task<MicroVm>> start, bool? withDisk = null)
    {
        var network = await NetworkNamespace.CreateAsync(attachment.Namespace, Tap, identity.Gateway, attachment.PrefixLength);
        try
        {
            var vm = await start(SpecOf(launch, template, identity, network, workDirectory, withDisk ?? launch.Shape.DiskMiB > 0));
            return await JoinSegmentAsync(launch, new RunningMicroVm(runner, vm, network, attachment, bootedFrom, PausedDirectoryOf(launch.MachineId)));
        }
        catch (Exception exception)
        {
            await network.DeleteAsync();
            var from = bootedFrom == "clone" ? " from its snapshot" : "";
            throw exception switch
            {
                MicroVmException failed => new LaunchFailedException($"the micro-VM did not come up{from}: {failed.Message}", failed),
                ArgumentException invalid => new LaunchFailedException($"the micro-VM cannot be made{from}: {invalid.Message}", invalid),
                _ => exception,
            };
        }
    }

    /// <summary>
    /// A machine given an address in its tenant's network joins the tenant's segment once it answers (it came up
    /// routed through its own namespace, where the driver could reach it; now its tap is bridged to the segment).
    /// </summary>
    private async Task<IRunningMachine> JoinSegmentAsync(LaunchMachine launch, RunningMicroVm machine)
    {
        if (launch.Network is not { } network)
        {
            return machine;
        }

        try
        {
            await networks.BridgeTapAsync(launch.TenantId, network, Tap);
            machine.ReachableFrom = NetworkNamespace.Open(networks.SegmentOf(launch.TenantId));
            return machine;
        }
        catch (IOException failed)
        {
            await machine.DisposeAsync();
            throw new LaunchFailedException($"the micro-VM could not join its tenant's network: {failed.Message}", failed);
        }
    }

    /// <summary>
    /// Keeps <c>poolSize</c> warmed VMs ready per snapshot until <paramref name="stoppingToken"/> fires: fills the
    /// pools, then tops them up after every launch that took from one. One VM at a time, and only on idle CPU time
    /// (see <see cref="MicroVmRunner.RestoreWarmAsync"/>), so that the pools never crowd out the host's machines.
    /// </summary>
    public async Task KeepPoolsFilledAsync(CancellationToken stoppingToken)
    {
        if (poolSize <= 0)
        {
            return;
        }

        while (true)
        {
            foreach (var (key, snapshot) in _snapshots)
            {
                while (await LivePooledCountAsync(key) < poolSize)
                {
                    await AddPooledAsync(key, snapshot, stoppingToken);
                }
            }

            await _refillWanted.WaitAsync(stoppingToken);
        }
    }

    /// <summary>
    /// Its QEMU, found by the pid file in its work directory and answering on its QMP socket, in its namespace (and its
    /// tenant's segment) as the previous run of the agent left them.
    /// </summary>
    public async Task<IRunningMachine?> AdoptAsync(LaunchMachine launch, CancellationToken cancellationToken)
    {
        var template = shelf.MicroVm.FirstOrDefault(t => t.Name == launch.Template.Name && t.Version == launch.Template.Version);
        var attachment = launch.Network ?? addresses.For(launch.MachineId);
        if (template is null || !(await NetworkNamespace.ListAsync(attachment.Namespace)).Contains(attachment.Namespace))
        {
            return null;
        }

        var identity = new GuestIdentity(launch.MachineId.ToString("N"), launch.Name, IPAddress.Parse(attachment.Address), attachment.PrefixLength,
            IPAddress.Parse(attachment.Gateway), attachment.Mac);
        var network = NetworkNamespace.Open(attachment.Namespace);
        var memory = MemoryFileOf(launch.MachineId);
        var spec = SpecOf(launch, template, identity, network, WorkDirectoryOf(launch.MachineId), File.Exists(DiskOf(launch.MachineId)));
        RunningMicroVm machine;
        if (PausedImageOf(launch.MachineId) is { } image)
        {
            // Paused: no QEMU runs; its image waits on disk for the resume.
            machine = RunningMicroVm.Paused(runner, image, spec, network, attachment, PausedDirectoryOf(launch.MachineId));
        }
        else if (await runner.AdoptAsync(spec, File.Exists(memory) ? memory : null, cancellationToken) is { } vm)
        {
            machine = new RunningMicroVm(runner, vm, network, attachment, "adopted", PausedDirectoryOf(launch.MachineId));
        }
        else
        {
            return null;
        }

        if (launch.Network is not null)
        {
            machine.ReachableFrom = NetworkNamespace.Open(networks.SegmentOf(launch.TenantId));
        }

        return machine;
    }

    /// <summary>QEMU is found by the pid file in the machine's work directory, whether the machine was booted, restored or activated from the pool.</summary>
    public async Task RemoveLeftoversAsync(Guid machineId, CancellationToken cancellationToken)
    {
        await MicroVm.RemoveLeftoverAsync(WorkDirectoryOf(machineId), cancellationToken);
        await NetworkNamespace.DeleteAsync(LocalAddresses.NamespaceOf(machineId));
        // Its image, and any a resume moved aside and had not removed yet.
        foreach (var image in Directory.Exists(pausedPath) ? Directory.GetDirectories(pausedPath, machineId.ToString("N") + "*") : [])
        {
            Directory.Delete(image, recursive: true);
        }

        // The guest's own memory file (a restored guest's is its copy of the snapshot's).
        var memory = MemoryFileOf(machineId);
        if (File.Exists(memory))
        {
            File.Delete(memory);
        }
    }

    /// <summary>Its work directory is made again at every launch; its disk goes now; its host-local address stays until the agent tears the machine down.</summary>
    public async Task CleanUpAsync(Guid machineId, CancellationToken cancellationToken)
    {
        await RemoveLeftoversAsync(machineId, cancellationToken);
        DiskImage.Delete(DiskOf(machineId));
    }

    /// <summary>
    /// The agent is stopping and the pools are no longer filled: the pooled VMs and the snapshots go (they live in memory;
    /// the next start makes them again; restored machines run on their own copies of its memory). The machines' own run files
    /// (work directories, guests' memory) stay while machines run on: the next start adopts them.
    /// </summary>
    public async Task ShutDownAsync()
    {
        List<PooledMicroVm> pooled;
        lock (_pools)
        {
            _shutDown = true;
            pooled = _pools.Values.SelectMany(p => p).Select(p => p.Vm).ToList();
            _pools.Clear();
        }

        foreach (var vm in pooled)
        {
            await vm.DisposeAsync();
        }

        foreach (var directory in new[] { PoolRoot, SnapshotRoot }.Where(Directory.Exists))
        {
            Directory.Delete(directory, recursive: true);
        }

        var machinesLeft = Directory.Exists(Path.Combine(runPath, "vm")) && Directory.EnumerateFileSystemEntries(Path.Combine(runPath, "vm")).Any();
        if (!machinesLeft && Directory.Exists(runPath))
        {
            Directory.Delete(runPath, recursive: true);
        }
    }

    private string WorkDirectoryOf(Guid machineId) => Path.Combine(runPath, "vm", machineId.ToString("N"));

    /// <summary>Where a paused machine's image lives: on the host's disk, not in memory, so that pausing it frees the memory.</summary>
    private string PausedDirectoryOf(Guid machineId) => Path.Combine(pausedPath, machineId.ToString("N"));

    /// <summary>The machine's finished pause image (its manifest is written last), if it is paused.</summary>
    private MicroVmSnapshot? PausedImageOf(Guid machineId)
    {
        var directory = PausedDirectoryOf(machineId);
        return File.Exists(Path.Combine(directory, "snapshot.json")) ? MicroVmSnapshot.Load(directory) : null;
    }

    private string MemoryFileOf(Guid machineId) => Path.Combine(runPath, DriverSetup.MemoryDirectoryName, $"{machineId:N}.ram");

    /// <summary>
    /// A warm VM of the pool if there is one, else the one warming if it has rehearsed already; those that failed stay
    /// for the refill to dispose and replace.
    /// </summary>
    private PooledMicroVm? TakePooled(SnapshotKey key)
    {
        lock (_pools)
        {
            var live = _pools.GetValueOrDefault(key)?.Where(p => p.IsLive).ToList() ?? [];
            var taken = live.FirstOrDefault(p => p.Vm.Warmed.IsCompletedSuccessfully) ?? live.FirstOrDefault(p => p.Vm.Rehearsed.IsCompletedSuccessfully);
            if (taken is null)
            {
                return null;
            }

            _pools[key].Remove(taken);
            taken.Taken.TrySetResult();
            return taken.Vm;
        }
    }

    /// <summary>How many VMs the pool of <paramref name="key"/> holds, warm or warming, once those whose QEMU ended or whose warming failed are disposed.</summary>
    private async Task<int> LivePooledCountAsync(SnapshotKey key)
    {
        List<PooledMicroVm> dead;
        int live;
        lock (_pools)
        {
            var pool = _pools.GetValueOrDefault(key) ?? [];
            dead = pool.Where(p => !p.IsLive).Select(p => p.Vm).ToList();
            pool.RemoveAll(p => !p.IsLive);
            live = pool.Count;
        }

        foreach (var vm in dead.Where(vm => vm.Warmed.IsCompletedSuccessfully))
        {
            logger.LogWarning("A pooled micro-VM of {Snapshot} ended while it waited: {Reason}", key, (await vm.Exited).Reason);
        }

        foreach (var vm in dead)
        {
            await vm.DisposeAsync();
        }

        return live;
    }

    /// <summary>
    /// Adds a VM to the pool of <paramref name="key"/> and returns once it is warm, or as soon as a launch takes it:
    /// warming it is then that launch's work, and the next refill may start.
    /// </summary>
    private async Task AddPooledAsync(SnapshotKey key, MicroVmSnapshot snapshot, CancellationToken stoppingToken)
    {
        var template = shelf.MicroVm.First(t => t.Version == key.Version);
        try
        {
            var pooled = new Pooled(await runner.RestoreWarmAsync(snapshot, template, Path.Combine(PoolRoot, Guid.NewGuid().ToString("N")[..12]), stoppingToken));
            if (!Keep(key, pooled))
            {
                await pooled.Vm.DisposeAsync();
                return;
            }

            // A pooled VM that dies is replaced, not only found dead by the next launch.
            _ = pooled.Vm.Exited.ContinueWith(_ => _refillWanted.Release(), TaskScheduler.Default);
            if (await Task.WhenAny(pooled.Vm.Warmed, pooled.Taken.Task) == pooled.Vm.Warmed)
            {
                await pooled.Vm.Warmed;
            }

            _refillBackoff = FirstRefillBackoff;
        }
        catch (Exception exception) when (!stoppingToken.IsCancellationRequested)
        {
            // Whatever it was, it must not end the agent (a failed background service stops the host): launches
            // restore from the snapshot meanwhile.
            logger.LogError(exception, "No pooled micro-VM of {Snapshot}: trying again in {Backoff}", key, _refillBackoff);
            await Task.Delay(_refillBackoff, stoppingToken);
            _refillBackoff = TimeSpan.FromTicks(Math.Min(_refillBackoff.Ticks * 2, LastRefillBackoff.Ticks));
        }
    }

    /// <summary>Adds <paramref name="pooled"/> to its pool, unless the agent is shutting down.</summary>
    private bool Keep(SnapshotKey key, Pooled pooled)
    {
        lock (_pools)
        {
            if (_shutDown)
            {
                return false;
            }

            _pools.TryAdd(key, []);
            _pools[key].Add(pooled);
            return true;
        }
    }

    private sealed record SnapshotKey(string Version, int Vcpus, int MemoryMiB)
    {
        public override string ToString() => $"{Version} {Vcpus}x{MemoryMiB}";
    }

    /// <summary>A VM in a pool, and whether a launch has taken it (then it is that launch's, warm or not).</summary>
    private sealed record Pooled(PooledMicroVm Vm)
    {
        public TaskCompletionSource Taken { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool IsLive => !Vm.Exited.IsCompleted && !Vm.Warmed.IsFaulted && !Vm.Warmed.IsCanceled;
    }

    /// <summary>
    /// Measured by its QEMU process; reached from its own namespace, or its tenant's segment once it joined it. Paused, it has
    /// no QEMU: its memory and device state are an image on the host's disk (<see cref="MicroVmRunner.PauseAsync"/>), and
    /// resuming starts a QEMU that takes them. Its end is its current QEMU's end, never that of the one a pause stopped.
    /// </summary>
    private sealed class RunningMicroVm : IRunningMachine, IPausableMachine, ISnapshottableMachine, ISampledMachine, IProbedMachine, IGuestAccess, IMachineLogs, IMachineConsole
    {
        private readonly MicroVmRunner _runner;
        private readonly NetworkNamespace _network;
        private readonly NetworkAttachment _attachment;
        private readonly string _pausedDirectory;
        private readonly MicroVmSpec _spec;
        private readonly TaskCompletionSource<MachineExit> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private volatile MicroVm? _vm;
        private volatile PausedMicroVm? _paused;
        private NetworkNamespace? _reachableFrom;

        public RunningMicroVm(MicroVmRunner runner, MicroVm vm, NetworkNamespace network, NetworkAttachment attachment, string bootedFrom, string pausedDirectory)
            : this(runner, vm.Spec, network, attachment, vm.Accelerator, bootedFrom, pausedDirectory)
        {
            Run(vm);
        }

        private RunningMicroVm(MicroVmRunner runner, MicroVmSpec spec, NetworkNamespace network, NetworkAttachment attachment, string accelerator, string bootedFrom, string pausedDirectory)
        {
            _runner = runner;
            _spec = spec;
            _network = network;
            _attachment = attachment;
            _pausedDirectory = pausedDirectory;
            Accelerator = accelerator;
            BootedFrom = bootedFrom;
        }

        /// <summary>A machine the agent finds paused when it starts: its image is on disk, no QEMU runs.</summary>
        public static RunningMicroVm Paused(MicroVmRunner runner, MicroVmSnapshot image, MicroVmSpec spec, NetworkNamespace network, NetworkAttachment attachment, string pausedDirectory) =>
            new(runner, spec, network, attachment, image.Accelerator, "adopted", pausedDirectory) { _paused = new PausedMicroVm(image, null) };

        public bool IsPaused => _paused is not null;

        public async Task PauseAsync(CancellationToken cancellationToken)
        {
            var vm = Current();
            // From here its QEMU's end is the pause's doing, unless the pause fails and it runs on.
            _vm = null;
            try
            {
                _paused = await _runner.PauseAsync(vm, _pausedDirectory, cancellationToken);
            }
            catch
            {
                Run(vm);
                throw;
            }
        }

        /// <summary>
        /// Its memory (with its processes and its in-memory root filesystem), device state and disk: a running VM is
        /// checkpointed and runs on; a paused one's image is copied.
        /// </summary>
        public async Task<SavedSnapshot> SaveSnapshotAsync(string directory, CancellationToken cancellationToken)
        {
            var image = _paused is { } paused
                ? await MicroVmRunner.CopyImageAsync(paused.Image, directory, _spec.DiskPath, cancellationToken)
                : await _runner.CheckpointAsync(Current(), directory, cancellationToken);
            var size = new DirectoryInfo(image.Directory).EnumerateFiles().Sum(f => f.Length);
            return new SavedSnapshot("memory+filesystem", size);
        }

        public async Task ResumeAsync(CancellationToken cancellationToken)
        {
            var paused = _paused ?? throw new InvalidOperationException("the micro-VM is not paused");
            var vm = await _runner.ResumeAsync(paused, _spec, cancellationToken);
            _paused = null;
            Run(vm);
            // The image is the size of the guest's memory: removing it is no part of the resume's time. Moved aside first, so
            // that a pause right after finds its directory free.
            var removed = $"{paused.Image.Directory}.{Guid.NewGuid():N}.removed";
            Directory.Move(paused.Image.Directory, removed);
            _ = Task.Run(() => Directory.Delete(removed, recursive: true), CancellationToken.None);
        }

        public Task<Stream> OpenConsoleAsync(CancellationToken cancellationToken) => Current().OpenConsoleAsync(cancellationToken);

        /// <summary>Through the guest agent, over the VM's virtio-serial port: never its network.</summary>
        public Task<IGuestProcess> StartAsync(GuestCommand command, CancellationToken cancellationToken) => Current().StartAsync(command, cancellationToken);

        /// <summary>Its console; nothing while it is paused (its console log waits with its image).</summary>
        public IAsyncEnumerable<LogChunk> ReadLogsAsync(LogQuery query, CancellationToken cancellationToken) =>
            _vm is { } vm ? vm.ReadLogsAsync(query, cancellationToken) : AsyncEnumerable.Empty<LogChunk>();

        /// <summary>Where its guest answers: its own namespace while its tap has the gateway's address, then its segment.</summary>
        public NetworkNamespace ReachableFrom
        {
            get => _reachableFrom ?? _network;
            set => _reachableFrom = value;
        }

        public NetworkAttachment? Network => _attachment;

        public string? Accelerator { get; }

        public string BootedFrom { get; }

        public Task<MachineExit> Exited => _exited.Task;

        /// <summary>Ends its QEMU; a paused one has none, and its image goes when it is disposed.</summary>
        public async Task StopAsync(CancellationToken cancellationToken)
        {
            if (_vm is { } vm)
            {
                await vm.StopAsync(TimeSpan.FromSeconds(5), cancellationToken);
            }
            else if (_paused is not null)
            {
                _exited.TrySetResult(new MachineExit(null, "stopped on request while paused"));
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (_vm is { } vm)
            {
                await vm.DisposeAsync();
            }

            if (_paused is { } paused)
            {
                if (paused.GuestAgent is { } agent)
                {
                    await agent.DisposeAsync();
                }

                if (Directory.Exists(paused.Image.Directory))
                {
                    Directory.Delete(paused.Image.Directory, recursive: true);
                }
            }

            _exited.TrySetResult(new MachineExit(null, "removed"));
            await _network.DeleteAsync();
        }

        public Func<CancellationToken, Task<string?>>? Heartbeat => cancellationToken => Current().HeartbeatAsync(ReachableFrom, cancellationToken);

        public MachineUsage? Sample()
        {
            if (_vm is not { } vm)
            {
                return null;
            }

            try
            {
                // QEMU holds the tap's host side: what the tap sent, the guest received.
                var (tapReceived, tapSent) = ProcessUsage.NetworkBytes(vm.ProcessId);
                return new MachineUsage(ProcessUsage.CpuNanoseconds(vm.ProcessId), ProcessUsage.ResidentBytes(vm.ProcessId), (long)vm.Spec.MemoryMiB * 1024 * 1024,
                    null, 0, tapSent, tapReceived);
            }
            catch (Exception exception) when (exception is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                // QEMU has just ended.
                return null;
            }
        }

        public Task<Socket> ConnectAsync(int port, CancellationToken cancellationToken) =>
            ReachableFrom.ConnectAsync(IPAddress.Parse(_attachment.Address), port, cancellationToken);

        private MicroVm Current() => _vm ?? throw new InvalidOperationException("the micro-VM is paused: resume it first");

        /// <summary>Makes <paramref name="vm"/> its QEMU: its end is the machine's, unless a pause took it away first.</summary>
        private void Run(MicroVm vm)
        {
            _vm = vm;
            _ = vm.Exited.ContinueWith(ended =>
            {
                if (ReferenceEquals(_vm, vm))
                {
                    _exited.TrySetResult(new MachineExit(ended.Result.ExitCode, ended.Result.Reason));
                }
            }, TaskScheduler.Default);
        }
    }
}
