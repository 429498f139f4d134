using Platform.Contracts.Provisioning;

namespace Platform.HostAgent.Drivers;

/// <summary>
/// One way of running machines on this host. The agent calls it one machine at a time (per machine), and
/// keeps what it launches until it is halted or torn down.
/// </summary>
public interface IMachineDriver
{
    DriverCapacity Capacity { get; }

    /// <summary>How this driver's machines are accelerated on this host (<c>kvm</c>, <c>tcg</c>); null when nothing is emulated.</summary>
    string? Accelerator { get; }

    /// <summary>The templates this driver can run machines from on this host.</summary>
    IReadOnlyList<TemplateOnHost> Templates { get; }

    /// <summary>Runs the machine and returns once it is ready (its guest answers); throws <see cref="LaunchFailedException"/> with a reason a user can act on.</summary>
    Task<IRunningMachine> LaunchAsync(LaunchMachine launch, CancellationToken cancellationToken);

    /// <summary>
    /// After the agent restarted: the machine <paramref name="launch"/> started, as a previous run of the agent left it, if
    /// it still runs (then the agent supervises it again, as if it had launched it); null when it does not.
    /// </summary>
    Task<IRunningMachine?> AdoptAsync(LaunchMachine launch, CancellationToken cancellationToken);

    /// <summary>
    /// Removes what a run of the machine left on the host when nothing watched it end (the agent crashed):
    /// its processes, namespace and files, but not what it needs to start again (its address).
    /// </summary>
    Task RemoveLeftoversAsync(Guid machineId, CancellationToken cancellationToken);

    /// <summary>
    /// Removes whatever the machine kept between runs (its network namespace, its files, its container, its cloud instance),
    /// so that its next launch starts from its template: before a fresh launch, and when it is torn down. Its address
    /// stays. Idempotent.
    /// </summary>
    Task CleanUpAsync(Guid machineId, CancellationToken cancellationToken);
}

public interface IRunningMachine : IAsyncDisposable
{
    NetworkAttachment? Network { get; }

    string? Accelerator { get; }

    /// <summary><c>cold</c> or <c>snapshot</c>.</summary>
    string BootedFrom { get; }

    /// <summary>Completes when the machine's main process ends, asked to or not.</summary>
    Task<MachineExit> Exited { get; }

    /// <summary>Stops it, gracefully where the driver can; disposing after is still required.</summary>
    Task StopAsync(CancellationToken cancellationToken);
}

/// <summary>
/// A running machine that can be paused in place, nothing of it running, and resumed as it was: its processes, address,
/// tunnel and forwards intact. A paused machine stays paused when the agent restarts (adoption finds it so).
/// </summary>
public interface IPausableMachine
{
    bool IsPaused { get; }

    /// <summary>Pauses it; returns once nothing of it runs. Throws, saying why, when it could not (it then runs on).</summary>
    Task PauseAsync(CancellationToken cancellationToken);

    /// <summary>Lets it run again; returns once it does.</summary>
    Task ResumeAsync(CancellationToken cancellationToken);
}

/// <summary>A running or paused machine whose state can be saved as a snapshot, which new machines of its driver start from.</summary>
public interface ISnapshottableMachine
{
    /// <summary>
    /// Saves the machine into <paramref name="directory"/> (new and empty), leaving it as it was (running or paused); returns
    /// what the snapshot holds. Throws, saying why, when it could not (the directory is then the caller's to remove).
    /// </summary>
    Task<SavedSnapshot> SaveSnapshotAsync(string directory, CancellationToken cancellationToken);
}

/// <summary>What a snapshot holds (<c>memory+filesystem</c> or <c>filesystem</c>; see <see cref="Contracts.Provisioning.SnapshotSaved"/>) and its size on the host's disk.</summary>
public sealed record SavedSnapshot(string Contents, long SizeBytes);

/// <summary>A driver whose snapshots hold more than their directory (a container engine's image): it removes that part.</summary>
public interface IKeepsSnapshotsElsewhere
{
    Task RemoveSnapshotAsync(string directory, CancellationToken cancellationToken);
}

/// <summary>How a machine's main process ended: its exit code when it had one, and why in words.</summary>
public sealed record MachineExit(int? ExitCode, string Reason);

public sealed class LaunchFailedException(string reason, Exception? inner = null) : Exception(reason, inner);
