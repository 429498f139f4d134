namespace Platform.Contracts.Provisioning;

/// <summary>Where a host agent takes its commands: its own queue, named from its host id.</summary>
public static class HostAgentQueue
{
    public static string NameOf(Guid hostId) => $"host-agent-{hostId}";

    public static Uri AddressOf(Guid hostId) => new($"queue:{NameOf(hostId)}");
}

/// <summary>
/// Command to one host agent (its own queue, <c>host-agent-{hostId}</c>): run the machine, cold or from a
/// ready snapshot. Idempotent by machine id: a machine that runs already is reported running again.
/// <paramref name="Region"/> and <paramref name="InstanceType"/> only for cloud machines.
/// <paramref name="FromSnapshot"/>: a snapshot this host keeps, which the machine starts from at every launch instead of its
/// template alone (a micro-VM's memory and processes, a sandbox's or container's files).
/// <paramref name="Fresh"/> (a recreate): first stop the machine if it runs and discard what it kept on the host between
/// runs, once per <paramref name="OperationId"/> (a repeat of the launch that runs is reported running again).
/// </summary>
public sealed record LaunchMachine(
    Guid MachineId,
    Guid TenantId,
    Guid OperationId,
    string Name,
    string Driver,
    TemplateRef Template,
    MachineShape Shape,
    IReadOnlyList<string>? Command,
    string Boot,
    NetworkAttachment? Network,
    string? Region = null,
    string? InstanceType = null,
    MachineProbe? Probe = null,
    bool Fresh = false,
    Guid? FromSnapshot = null);

/// <summary>Command to a host agent: stop the machine's processes, keep what it needs to start again.</summary>
public sealed record HaltMachine(Guid MachineId, Guid TenantId, Guid OperationId);

/// <summary>Command to a host agent: pause the running machine in place (its processes keep their state; nothing of it runs).</summary>
public sealed record PauseMachine(Guid MachineId, Guid TenantId, Guid OperationId);

/// <summary>Command to a host agent: let the paused machine run again, as it was.</summary>
public sealed record ResumeMachine(Guid MachineId, Guid TenantId, Guid OperationId);

/// <summary>
/// Command to a host agent: save the running or paused machine as snapshot <paramref name="SnapshotId"/>, which it keeps
/// until told to remove it. Idempotent by snapshot id: a snapshot saved already is reported saved again.
/// </summary>
public sealed record TakeSnapshot(Guid SnapshotId, Guid MachineId, Guid TenantId);

/// <summary>Command to a host agent: remove the snapshot it keeps. Idempotent.</summary>
public sealed record RemoveSnapshot(Guid SnapshotId, Guid TenantId);

/// <summary>
/// An agent's report: the snapshot is saved on the host, <paramref name="SizeBytes"/> on its disk, after
/// <paramref name="Milliseconds"/>. <paramref name="Contents"/> says what it holds: <c>memory+filesystem</c> (a micro-VM:
/// its memory, with its processes and its in-memory root, and its devices) or <c>filesystem</c> (a sandbox's /scratch, a
/// container's own layer).
/// </summary>
public sealed record SnapshotSaved(Guid SnapshotId, Guid MachineId, Guid TenantId, Guid HostId, string Contents, long SizeBytes, double Milliseconds);

/// <summary>An agent's report: the snapshot could not be saved (the machine runs on as it was), and why.</summary>
public sealed record SnapshotNotSaved(Guid SnapshotId, Guid MachineId, Guid TenantId, Guid HostId, string Reason);

/// <summary>An agent's report: the snapshot is gone from the host (or was never there); repeated for a repeated command.</summary>
public sealed record SnapshotRemoved(Guid SnapshotId, Guid TenantId, Guid HostId);

/// <summary>Command to a host agent: remove every trace of the machine from the host. Idempotent.</summary>
public sealed record TearDownMachine(Guid MachineId, Guid TenantId, Guid OperationId);

/// <summary>An agent's report: the machine runs and answers.</summary>
public sealed record MachineLaunched(
    Guid MachineId,
    Guid TenantId,
    Guid OperationId,
    Guid HostId,
    NetworkAttachment? Network,
    string? Accelerator,
    string BootedFrom,
    double LaunchMilliseconds);

public sealed record MachineLaunchFailed(Guid MachineId, Guid TenantId, Guid OperationId, Guid HostId, string Reason);

public sealed record MachineHalted(Guid MachineId, Guid TenantId, Guid OperationId, Guid HostId);

/// <summary>An agent's report: the machine is paused on the host (after <paramref name="Milliseconds"/>); repeated for a repeated command.</summary>
public sealed record MachineFrozen(Guid MachineId, Guid TenantId, Guid OperationId, Guid HostId, double Milliseconds);

/// <summary>An agent's report: the paused machine runs again (after <paramref name="Milliseconds"/>); repeated for a repeated command.</summary>
public sealed record MachineThawed(Guid MachineId, Guid TenantId, Guid OperationId, Guid HostId, double Milliseconds);

/// <summary>An agent's report: the machine could not be paused (it runs on, as before) or resumed (it is lost), and why.</summary>
public sealed record MachineFreezeFailed(Guid MachineId, Guid TenantId, Guid OperationId, Guid HostId, string Reason);

/// <summary>An agent's report: the machine's main process ended without being asked to.</summary>
public sealed record MachineExited(Guid MachineId, Guid TenantId, Guid HostId, int? ExitCode, string Reason);

public sealed record MachineTornDown(Guid MachineId, Guid TenantId, Guid OperationId, Guid HostId);
