using ContainerInspectResponse = Docker.DotNet.Models.ContainerInspectResponse;
using ImagesListResponse = Docker.DotNet.Models.ImagesListResponse;
using Platform.Contracts.Provisioning;
using Platform.Provisioning.Drivers.Container;
using Platform.Provisioning.Drivers.Guests;

namespace Platform.HostAgent.Drivers;

/// <summary>
/// Containers, through a Docker Engine API (dockerd, or podman's Docker-compatible service). Its templates are the
/// images the engine holds: the first repo tag is the name, the image id the version. A launch creates a fresh
/// container from the image, named and labelled after the machine and sized from its shape; a halt stops it and
/// removes it, so that the next launch starts again from the image.
/// </summary>
/// <remarks>
/// A machine's <c>diskMiB</c> limits its writable layer where the engine can (<paramref name="limitsWritableLayer"/>, see
/// <see cref="ContainerEngine.LimitsWritableLayerAsync"/>); elsewhere the driver offers no disk, and placement refuses one.
/// </remarks>
public sealed class ContainerDriver(ContainerEngine docker, ContainerOptions options, HostSnapshots snapshots, ILogger<ContainerDriver> logger, bool limitsWritableLayer = false)
    : IMachineDriver, IKeepsSnapshotsElsewhere
{
    /// <summary>
    /// The repository a container's snapshot is committed to, tagged with the snapshot's id: no template. Named with its
    /// registry, so that podman does not file it under docker.io.
    /// </summary>
    public const string SnapshotRepository = "localhost/platform-snapshot";

    /// <summary>The file in a snapshot's directory that names its image (by id).</summary>
    private const string SnapshotImageFile = "image";

    public const string Kind = "container";
    public const string MachineIdLabel = "platform.machine-id";
    public const string TenantIdLabel = "platform.tenant-id";

    /// <summary>How long a stopped container's main process gets between its stop signal and SIGKILL; within the agent's 10 s grace.</summary>
    public static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(5);

    private static readonly TimeSpan TemplateRefreshInterval = TimeSpan.FromSeconds(5);
    private const int LogTailLines = 20;
    private const int ReasonTailCharacters = 500;
    private volatile IReadOnlyList<TemplateOnHost> _templates = [];

    public DriverCapacity Capacity { get; } = new(Kind, Kind, MaxVcpus: Environment.ProcessorCount, MinMemoryMiB: 16, MaxMemoryMiB: 64 * 1024,
        MaxDiskMiB: limitsWritableLayer ? 1024 * 1024 : 0);

    public string? Accelerator => null;

    /// <summary>The engine's images as of the last <see cref="RefreshTemplatesAsync"/>.</summary>
    public IReadOnlyList<TemplateOnHost> Templates => _templates;

    public static string ContainerName(Guid machineId) => $"pm-{machineId:N}";

    /// <summary>
    /// Reads the images the engine holds as templates: each tagged image once, under its first tag, versioned by the
    /// first 12 hex digits of its id (the id is the sha256 of its configuration).
    /// </summary>
    public async Task RefreshTemplatesAsync(CancellationToken cancellationToken)
    {
        var images = await docker.ListImagesAsync(cancellationToken);
        _templates = images.Select(i => (Tags: i.Tags(), Sha256: i.Sha256()))
            .Where(i => i.Tags.Count > 0 && !i.Tags.Any(IsSnapshotTag))
            .Select(i => new TemplateOnHost(i.Tags[0], i.Sha256[..12], Kind, i.Sha256, []))
            .DistinctBy(t => (t.Name, t.Version))
            .OrderBy(t => t.Name, StringComparer.Ordinal)
            .ToList();
    }

    private static bool IsSnapshotTag(string tag) => tag.StartsWith(SnapshotRepository + ":", StringComparison.Ordinal);

    /// <summary>Removes the snapshot's image; one a container still uses stays (the engine refuses) and the refusal is thrown.</summary>
    public async Task RemoveSnapshotAsync(string directory, CancellationToken cancellationToken)
    {
        var imageFile = Path.Combine(directory, SnapshotImageFile);
        if (File.Exists(imageFile))
        {
            await docker.RemoveImageAsync((await File.ReadAllTextAsync(imageFile, cancellationToken)).Trim(), cancellationToken);
        }
    }

    /// <summary>Keeps <see cref="Templates"/> current while the agent runs: images come and go with <c>docker pull</c> and <c>rmi</c>.</summary>
    public async Task KeepTemplatesCurrentAsync(CancellationToken cancellationToken)
    {
        var failing = false;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await RefreshTemplatesAsync(cancellationToken);
                if (failing)
                {
                    logger.LogInformation("The container engine at {Socket} answers again", docker.SocketPath);
                }

                failing = false;
            }
            catch (ContainerEngineException unanswered)
            {
                // Once per outage: the images last read stay offered, and launches will say what is wrong.
                if (!failing)
                {
                    logger.LogWarning("Cannot list the container engine's images: {Reason}", unanswered.Message);
                }

                failing = true;
            }

            await Task.Delay(TemplateRefreshInterval, cancellationToken);
        }
    }

    public async Task<IRunningMachine> LaunchAsync(LaunchMachine launch, CancellationToken cancellationToken)
    {
        var name = ContainerName(launch.MachineId);
        try
        {
            var image = launch.FromSnapshot is { } snapshot
                ? (await File.ReadAllTextAsync(Path.Combine(snapshots.LaunchDirectoryOf(snapshot), SnapshotImageFile), cancellationToken)).Trim()
                : (await ImageOfAsync(launch.Template, cancellationToken)).ID;
            // A previous run's container (stopped, or left by a crash) holds the name: each run starts from the image.
            await docker.RemoveContainerAsync(name, cancellationToken);
            var spec = new ContainerSpec(name, image, launch.Command,
                new Dictionary<string, string> { [MachineIdLabel] = launch.MachineId.ToString(), [TenantIdLabel] = launch.TenantId.ToString() },
                new ContainerLimits(launch.Shape.MemoryMiB * 1024L * 1024, launch.Shape.Vcpus, options.MaxProcesses),
                options.Network, launch.Name, options.CgroupParent, options.UserNamespace, GuestAgent.Built())
            {
                DiskMiB = launch.Shape.DiskMiB,
            };
            var id = await docker.CreateContainerAsync(spec, cancellationToken);
            try
            {
                await docker.StartContainerAsync(id, cancellationToken);
                var inspection = await docker.InspectContainerAsync(id, cancellationToken)
                    ?? throw new LaunchFailedException($"container {name} was removed while it started");
                return new RunningContainer(docker, inspection, launch.Shape.MemoryMiB, logger);
            }
            catch
            {
                await RemoveQuietlyAsync(id);
                throw;
            }
        }
        catch (ContainerEngineException refused)
        {
            throw new LaunchFailedException($"The container could not start: {refused.Message}", refused);
        }
    }

    /// <summary>
    /// Removes the machine's container, found by its label and by its name, whatever state it is in. When the engine
    /// does not answer this is logged and not thrown: it runs while the agent starts, which must not wait for the engine.
    /// </summary>
    /// <summary>Its container, found by its machine label, if the engine says it runs.</summary>
    public async Task<IRunningMachine?> AdoptAsync(LaunchMachine launch, CancellationToken cancellationToken)
    {
        foreach (var container in await docker.ListContainersAsync($"{MachineIdLabel}={launch.MachineId}", cancellationToken))
        {
            if (await docker.InspectContainerAsync(container.ID, cancellationToken) is { State.Running: true } inspection)
            {
                return new RunningContainer(docker, inspection, launch.Shape.MemoryMiB, logger);
            }
        }

        return null;
    }

    public async Task RemoveLeftoversAsync(Guid machineId, CancellationToken cancellationToken)
    {
        try
        {
            await RemoveContainersOfAsync(machineId, cancellationToken);
        }
        catch (ContainerEngineException unanswered)
        {
            logger.LogError("Cannot remove what machine {MachineId} left in the container engine: {Reason}", machineId, unanswered.Message);
        }
    }

    /// <summary>Removes the machine's container; throws when the engine does not answer, so that the tear-down is retried.</summary>
    public Task CleanUpAsync(Guid machineId, CancellationToken cancellationToken) => RemoveContainersOfAsync(machineId, cancellationToken);

    private async Task RemoveContainersOfAsync(Guid machineId, CancellationToken cancellationToken)
    {
        foreach (var container in await docker.ListContainersAsync($"{MachineIdLabel}={machineId}", cancellationToken))
        {
            await docker.RemoveContainerAsync(container.ID, cancellationToken);
        }

        await docker.RemoveContainerAsync(ContainerName(machineId), cancellationToken);
    }

    /// <summary>A container that failed to start goes, if the engine lets it; if not, the machine's tear-down removes it by its label.</summary>
    private async Task RemoveQuietlyAsync(string container)
    {
        try
        {
            await docker.RemoveContainerAsync(container, CancellationToken.None);
        }
        catch (ContainerEngineException unanswered)
        {
            logger.LogWarning("Cannot remove container {Container}, which failed to start: {Reason}", container, unanswered.Message);
        }
    }

    /// <summary>The image placement chose: the one tagged with the template's name whose id the version abbreviates.</summary>
    private async Task<ImagesListResponse> ImageOfAsync(TemplateRef template, CancellationToken cancellationToken)
    {
        var images = await docker.ListImagesAsync(cancellationToken);
        return images.FirstOrDefault(i => i.Tags().Contains(template.Name) && i.Sha256().StartsWith(template.Version, StringComparison.Ordinal))
            ?? images.FirstOrDefault(i => i.Sha256().StartsWith(template.Version, StringComparison.Ordinal))
            ?? throw new LaunchFailedException($"the container engine holds no image {template.Name}@{template.Version} any more");
    }

    private sealed class RunningContainer : IRunningMachine, IPausableMachine, ISnapshottableMachine, IGuestAccess, IMachineLogs
    {
        private readonly ContainerEngine _docker;
        private readonly string _id;
        private volatile bool _paused;
        private readonly ContainerGuest _guest;
        private readonly ILogger _logger;
        private readonly CancellationTokenSource _watching = new();
        private int _disposed;

        public RunningContainer(ContainerEngine docker, ContainerInspectResponse inspection, int memoryMiB, ILogger logger)
        {
            _docker = docker;
            _id = inspection.ID;
            _guest = new ContainerGuest(docker, inspection);
            _logger = logger;
            // Adopted after the agent restarted: the engine kept it paused.
            _paused = inspection.State?.Paused ?? false;
            Network = inspection.NetworkSettings.PrimaryEndpoint() is { IPAddress: { } address } endpoint
                ? new NetworkAttachment(inspection.NetworkSettings.SandboxKey ?? "", address, (int)endpoint.IPPrefixLen, endpoint.Gateway ?? "", endpoint.MacAddress ?? "")
                : null;
            Exited = WatchAsync(memoryMiB, _watching.Token);
        }

        public NetworkAttachment? Network { get; }

        public Task<IGuestProcess> StartAsync(GuestCommand command, CancellationToken cancellationToken) => _guest.StartAsync(command, cancellationToken);

        public IAsyncEnumerable<LogChunk> ReadLogsAsync(LogQuery query, CancellationToken cancellationToken) => _docker.ReadLogsAsync(_id, query, cancellationToken);

        public string? Accelerator => null;

        public string BootedFrom => "cold";

        public Task<MachineExit> Exited { get; }

        /// <summary>Paused by the engine (the cgroup freezer): its processes keep their memory and use no CPU.</summary>
        public bool IsPaused => _paused;

        public async Task PauseAsync(CancellationToken cancellationToken)
        {
            await _docker.PauseContainerAsync(_id, cancellationToken);
            _paused = true;
        }

        public async Task ResumeAsync(CancellationToken cancellationToken)
        {
            await _docker.UnpauseContainerAsync(_id, cancellationToken);
            _paused = false;
        }

        /// <summary>Its filesystem committed as an image (paused meanwhile, unless it is paused already); not its /tmp or its processes.</summary>
        public async Task<SavedSnapshot> SaveSnapshotAsync(string directory, CancellationToken cancellationToken)
        {
            var image = await _docker.CommitAsync(_id, SnapshotRepository, Path.GetFileName(directory), _paused, cancellationToken);
            await File.WriteAllTextAsync(Path.Combine(directory, SnapshotImageFile), image, cancellationToken);
            return new SavedSnapshot("filesystem", (await _docker.InspectImageAsync(image, cancellationToken))?.Size ?? 0);
        }

        public async Task StopAsync(CancellationToken cancellationToken)
        {
            try
            {
                if (_paused)
                {
                    // A frozen process cannot take its stop signal.
                    await ResumeAsync(cancellationToken);
                }

                await _docker.StopContainerAsync(_id, StopTimeout, cancellationToken);
            }
            catch (ContainerEngineException gone) when (gone.IsNotFound)
            {
                // Removed already: stopped is what was asked.
            }
        }

        /// <summary>Removes the container (killing it if it still runs): the next launch creates a new one.</summary>
        public async ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 1)
            {
                return;
            }

            try
            {
                await _docker.RemoveContainerAsync(_id, CancellationToken.None);
            }
            catch (ContainerEngineException unanswered)
            {
                // The machine's tear-down removes it by its label once the engine answers again.
                _logger.LogWarning("Cannot remove container {Container}: {Reason}", _id, unanswered.Message);
            }

            await _guest.DisposeAsync();
            await _watching.CancelAsync();
            await Exited;
            _watching.Dispose();
        }

        /// <summary>
        /// Waits for the container to end and says how, in words a user can act on. Never throws: the agent awaits it
        /// unguarded. When the engine reports an out-of-memory kill, the reason says so; podman 4 never does
        /// (containers/podman#13102), so there such a container reads as killed with exit code 137.
        /// </summary>
        private async Task<MachineExit> WatchAsync(int memoryMiB, CancellationToken cancellationToken)
        {
            int exitCode;
            try
            {
                exitCode = await _docker.WaitContainerAsync(_id, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return new MachineExit(null, "stopped");
            }
            catch (ContainerEngineException lost)
            {
                return new MachineExit(null, lost.IsNotFound ? "its container was removed" : $"the container engine lost it: {lost.Message}");
            }

            string errors = "";
            var oomKilled = false;
            try
            {
                oomKilled = (await _docker.InspectContainerAsync(_id, cancellationToken))?.State.OOMKilled ?? false;
                if (exitCode != 0)
                {
                    var logs = await _docker.LogsAsync(_id, LogTailLines, cancellationToken);
                    errors = (logs.Errors.Trim().Length > 0 ? logs.Errors : logs.Output).Trim();
                }
            }
            catch (Exception exception) when (exception is ContainerEngineException or OperationCanceledException)
            {
                // Removed while it was read (a halt): the exit code says enough.
            }

            var tail = errors.Length > ReasonTailCharacters ? errors[^ReasonTailCharacters..] : errors;
            var reason = oomKilled ? $"killed for going over its memory limit ({memoryMiB} MiB)"
                : exitCode == 0 ? "its command finished"
                : exitCode == 137 ? $"its command was killed (SIGKILL, exit code 137): over its memory limit ({memoryMiB} MiB), or from outside"
                : $"its command exited with code {exitCode}";
            return new MachineExit(exitCode, tail.Length > 0 ? $"{reason}: {tail}" : reason);
        }
    }
}

/// <summary>The container driver's settings, section <c>Platform:Agent:Container</c>.</summary>
public sealed class ContainerOptions
{
    /// <summary>The engine's unix socket: podman's (<c>podman system service</c>) or Docker's <c>/var/run/docker.sock</c>.</summary>
    public string Socket { get; set; } = "/run/podman/podman.sock";

    /// <summary>
    /// Docker's network mode for machines' containers. <c>none</c> (only loopback, as sandboxes) until networking plugs
    /// containers into their tenant's segment; <c>bridge</c> gives them the engine's shared bridge, where containers of
    /// different tenants can reach one another.
    /// </summary>
    public string Network { get; set; } = "none";

    /// <summary>The cgroup containers are created under; the engine's default when unset.</summary>
    public string? CgroupParent { get; set; }

    /// <summary>How many processes and threads one container may run.</summary>
    public int MaxProcesses { get; set; } = 512;

    /// <summary>
    /// The engine's user-namespace mode for machines' containers: <c>auto</c> with podman (each container's root is an
    /// unprivileged host id of a range podman takes from the <c>containers</c> entries of /etc/subuid and /etc/subgid);
    /// unset, the engine's default (Docker's daemon-wide <c>userns-remap</c>, or none).
    /// </summary>
    public string? UserNamespace { get; set; }
}
