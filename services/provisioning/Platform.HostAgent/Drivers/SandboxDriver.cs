using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Platform.Contracts.Provisioning;
using Platform.HostAgent.Networking;
using Platform.HostAgent.Telemetry;
using Platform.Provisioning.Drivers.Networking;
using Platform.Provisioning.Drivers.Guests;
using Platform.Provisioning.Drivers.Sandbox;
using Platform.Provisioning.Drivers.Templates;

namespace Platform.HostAgent.Drivers;

/// <summary>
/// Sandboxes: the machine's command (or an idle shell) under bubblewrap, on the host's /usr read-only, in
/// cgroups sized from its shape, with a /scratch disk of its <c>diskMiB</c> (in memory when 0). Its one template, <c>sandbox-host</c>, is this host's /usr, versioned by
/// the host's OS release and bubblewrap build. A sandbox with a network runs in a namespace of its own whose
/// <c>eth0</c> is a port of its tenant's segment; without one, in an empty namespace.
/// </summary>
public sealed class SandboxDriver : IMachineDriver
{
    public const string TemplateName = "sandbox-host";
    private static readonly IReadOnlyList<string> IdleCommand = ["/bin/sh", "-c", "exec sleep infinity"];
    private readonly SandboxRunner _runner;
    private readonly int _maxProcesses;
    private readonly TenantNetworks _networks;
    private readonly HostSnapshots _snapshots;

    /// <summary>A sandbox's snapshot: its /scratch, as a tar archive.</summary>
    private const string FilesArchive = "files.tar";

    private readonly Func<IReadOnlyList<ImageTemplate>> _images;
    private readonly TemplateOnHost _hostTemplate;

    /// <param name="images">The templates built from images, as the host holds them now: a sandbox of one runs on its root, read-only, instead of the host's /usr.</param>
    public SandboxDriver(SandboxRunner runner, int maxProcesses, TenantNetworks networks, HostSnapshots snapshots, Func<IReadOnlyList<ImageTemplate>>? images = null)
    {
        _runner = runner;
        _maxProcesses = maxProcesses;
        _networks = networks;
        _snapshots = snapshots;
        _images = images ?? (() => []);
        var sha = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
            $"{ReadOrEmpty("/etc/os-release")}\n{runner.Cgroups.Version}\n{new FileInfo("/usr/bin/bwrap").Length}")));
        _hostTemplate = new TemplateOnHost(TemplateName, sha[..12], "sandbox", sha, []);
    }

    public DriverCapacity Capacity { get; } = new("sandbox", "sandbox", MaxVcpus: Environment.ProcessorCount, MinMemoryMiB: 16, MaxMemoryMiB: 64 * 1024, MaxDiskMiB: MaxDiskMiB);

    /// <summary>The largest /scratch disk a sandbox gets (its host's free room is placement's concern).</summary>
    public const int MaxDiskMiB = 1024 * 1024;

    public string? Accelerator => null;

    public IReadOnlyList<TemplateOnHost> Templates => [_hostTemplate, .. _images().Select(i => new TemplateOnHost(i.Name, i.Version, ImageTemplate.Kind, i.Sha256, [], i.RootImageMiB))];

    public static string SandboxId(Guid machineId) => $"m-{machineId:N}";

    public async Task<IRunningMachine> LaunchAsync(LaunchMachine launch, CancellationToken cancellationToken)
    {
        try
        {
            var spec = SpecOf(launch) with { Files = launch.FromSnapshot is { } snapshot ? Path.Combine(_snapshots.LaunchDirectoryOf(snapshot), FilesArchive) : null };
            if (launch.Network is { } network)
            {
                await _networks.PlugNamespaceAsync(launch.TenantId, network);
            }

            return new RunningSandbox(_runner.Start(spec), _runner, launch.Shape.MemoryMiB, launch.Network);
        }
        catch (Exception exception) when (exception is ArgumentException or IOException or UnauthorizedAccessException or System.ComponentModel.Win32Exception)
        {
            await RemoveLeftoversAsync(launch.MachineId, cancellationToken);
            throw new LaunchFailedException($"The sandbox could not start: {exception.Message}", exception);
        }
    }

    /// <summary>Its shell still runs in its cgroups (see <see cref="SandboxRunner.Adopt"/>); its namespace and segment port are where it left them.</summary>
    public Task<IRunningMachine?> AdoptAsync(LaunchMachine launch, CancellationToken cancellationToken) =>
        Task.FromResult<IRunningMachine?>(_runner.Adopt(SpecOf(launch)) is { } process
            ? new RunningSandbox(process, _runner, launch.Shape.MemoryMiB, launch.Network)
            : null);

    /// <summary>
    /// On the host's /usr, or on an image's root: then its command is the image's entrypoint and command unless the machine
    /// names one, with the image's variables and working directory.
    /// </summary>
    private SandboxSpec SpecOf(LaunchMachine launch)
    {
        var image = _images().FirstOrDefault(i => i.Name == launch.Template.Name && i.Version == launch.Template.Version);
        var command = launch.Command ?? (image is { Command.Count: > 0 } ? image.Command : IdleCommand);
        return new(SandboxId(launch.MachineId), command, new SandboxLimits(launch.Shape.MemoryMiB, _maxProcesses, launch.Shape.Vcpus), launch.Name)
        {
            NetworkNamespace = launch.Network?.Namespace,
            DiskMiB = launch.Shape.DiskMiB,
            Root = image?.RootfsPath,
            Environment = image?.Environment ?? new Dictionary<string, string>(),
            WorkingDirectory = image?.WorkingDirectory,
        };
    }

    public async Task RemoveLeftoversAsync(Guid machineId, CancellationToken cancellationToken)
    {
        await _runner.Cgroups.RemoveAsync(SandboxId(machineId));
        _runner.RemoveRunDirectory(SandboxId(machineId));
        await NetworkNamespace.DeleteAsync(LocalAddresses.NamespaceOf(machineId));
    }

    public Task CleanUpAsync(Guid machineId, CancellationToken cancellationToken) => RemoveLeftoversAsync(machineId, cancellationToken);

    private static string ReadOrEmpty(string path) => File.Exists(path) ? File.ReadAllText(path) : "";

    /// <summary>Measured by its cgroups; its network is its own namespace, a port of its tenant's segment when it has an address.</summary>
    private sealed class RunningSandbox(SandboxProcess process, SandboxRunner runner, int memoryMiB, NetworkAttachment? network) :
        IRunningMachine, IPausableMachine, ISnapshottableMachine, ISampledMachine, IProbedMachine, IGuestAccess, IMachineLogs
    {
        /// <summary>Its /scratch, saved from inside it, running or frozen; /tmp and its processes are not kept.</summary>
        public async Task<SavedSnapshot> SaveSnapshotAsync(string directory, CancellationToken cancellationToken) =>
            new("filesystem", await runner.SaveFilesAsync(process, Path.Combine(directory, FilesArchive), cancellationToken));

        /// <summary>Paused by the cgroup freezer: its processes keep their memory (counted as before) and use no CPU.</summary>
        public bool IsPaused => runner.Cgroups.IsFrozen(process.Spec.Id);

        public Task PauseAsync(CancellationToken cancellationToken) => runner.Cgroups.FreezeAsync(process.Spec.Id, cancellationToken);

        public Task ResumeAsync(CancellationToken cancellationToken)
        {
            runner.Cgroups.Thaw(process.Spec.Id);
            return Task.CompletedTask;
        }

        public IAsyncEnumerable<LogChunk> ReadLogsAsync(LogQuery query, CancellationToken cancellationToken) => process.ReadLogsAsync(query, cancellationToken);

        /// <summary>A machine is running from the moment its sandbox's namespaces exist; a command waits (briefly) for its root to be made.</summary>
        public async Task<IGuestProcess> StartAsync(GuestCommand command, CancellationToken cancellationToken)
        {
            await process.WaitUntilSetUpAsync(TimeSpan.FromSeconds(10), cancellationToken);
            return await runner.ExecAsync(process, command, cancellationToken);
        }

        public NetworkAttachment? Network => network;

        public string? Accelerator => null;

        public string BootedFrom => "cold";

        public Task<MachineExit> Exited { get; } = WatchAsync(process, memoryMiB);

        /// <summary>Ends it; what it wrote stays readable until it is disposed (its host keeps its logs then).</summary>
        public Task StopAsync(CancellationToken cancellationToken) => process.KillAsync();

        public ValueTask DisposeAsync() => process.DisposeAsync();

        public Func<CancellationToken, Task<string?>>? Heartbeat => null;

        public MachineUsage? Sample()
        {
            if (runner.Cgroups.Usage(process.Spec.Id) is not { } usage || process.InsideProcessId is not { } inside)
            {
                return null;
            }

            try
            {
                var (received, sent) = ProcessUsage.NetworkBytes(inside);
                return new MachineUsage(usage.CpuNanoseconds, usage.MemoryBytes, usage.MemoryLimitBytes, usage.Processes, 0, received, sent);
            }
            catch (IOException)
            {
                return null;
            }
        }

        public Task<Socket> ConnectAsync(int port, CancellationToken cancellationToken) =>
            process.InsideProcessId is { } inside
                ? NetworkNamespace.OfProcess(inside).ConnectAsync(IPAddress.Loopback, port, cancellationToken)
                : throw new IOException("the sandbox has no process running");

        private static async Task<MachineExit> WatchAsync(SandboxProcess process, int memoryMiB)
        {
            var exit = await process.WaitAsync(Timeout.InfiniteTimeSpan);
            var tail = exit.Errors.Length > 500 ? exit.Errors[^500..] : exit.Errors;
            var reason = exit.OutOfMemory ? $"killed for going over its memory limit ({memoryMiB} MiB)"
                : exit.ProcessLimitReached && exit.ExitCode != 0 ? $"exited with code {exit.ExitCode} after reaching its process limit"
                : exit.ExitCode == 0 ? "its command finished"
                : exit.ExitCode is null ? "it was ended from outside before its command finished"
                : $"its command exited with code {exit.ExitCode}";
            return new MachineExit(exit.ExitCode, tail.Trim().Length > 0 && exit.ExitCode != 0 ? $"{reason}: {tail.Trim()}" : reason);
        }
    }
}
