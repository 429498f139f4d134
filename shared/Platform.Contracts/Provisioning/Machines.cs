namespace Platform.Contracts.Provisioning;

/// <summary>What a machine is made of, as its creator asked for it (sizes in MiB).</summary>
public sealed record MachineShape(int Vcpus, int MemoryMiB, int DiskMiB);

/// <summary>A template at one content-addressed version: <c>microvm-default</c> at <c>3f2a…</c>.</summary>
public sealed record TemplateRef(string Name, string Version);

/// <summary>
/// Where a machine is on the network: its address inside its network namespace and the host side of it.
/// The driver plugs the machine into it; until the networking service hands these out, the host agent
/// makes a host-local one. A cloud instance's is its cloud's: its private address in <paramref name="Namespace"/>
/// <c>{driver}:{region}</c>, and its <paramref name="PublicAddress"/> when it has one.
/// </summary>
public sealed record NetworkAttachment(string Namespace, string Address, int PrefixLength, string Gateway, string Mac, string? PublicAddress = null)
{
    /// <summary>The network namespace of the machine's own on its host.</summary>
    public static string NamespaceOf(Guid machineId) => $"pm-{machineId:N}";

    /// <summary>A locally administered unicast MAC made from the machine id: the same machine gets the same one wherever it runs.</summary>
    public static string MacOf(Guid machineId) => "02:" + string.Join(':', machineId.ToByteArray()[^5..].Select(b => b.ToString("x2")));
}

/// <summary>
/// A check its host agent runs against a machine, declared at creation: a TCP connection to <paramref name="Tcp"/>,
/// or an HTTP GET of <paramref name="Http"/> answering 2xx or 3xx, from inside the machine's network, every
/// <paramref name="IntervalSeconds"/>. After <paramref name="UnhealthyAfter"/> failures in a row the machine is unhealthy.
/// </summary>
public sealed record MachineProbe(int? Tcp, HttpProbe? Http, int? IntervalSeconds, int? UnhealthyAfter)
{
    public const int DefaultIntervalSeconds = 10;
    public const int DefaultUnhealthyAfter = 3;

    public TimeSpan Interval => TimeSpan.FromSeconds(IntervalSeconds ?? DefaultIntervalSeconds);

    public int FailuresToUnhealthy => UnhealthyAfter ?? DefaultUnhealthyAfter;
}

/// <summary>An HTTP probe: <c>GET {Path}</c> on <paramref name="Port"/>.</summary>
public sealed record HttpProbe(int Port, string Path);

/// <summary>
/// A tenant asked for a machine; it is placed on <paramref name="HostId"/> and is now <c>creating</c>. A cloud
/// machine also has the <paramref name="Region"/> and <paramref name="InstanceType"/> placement chose. A machine made
/// from a snapshot (<paramref name="FromSnapshot"/>) is on the snapshot's host and starts from it at every launch.
/// </summary>
public sealed record MachineRequested(
    Guid MachineId,
    Guid TenantId,
    Guid OperationId,
    string Name,
    string Kind,
    string Driver,
    Guid HostId,
    TemplateRef Template,
    MachineShape Shape,
    IReadOnlyDictionary<string, string> Labels,
    IReadOnlyList<string>? Command,
    string Boot,
    DateTimeOffset RequestedAt,
    Guid? ExitNodeId = null,
    string? Region = null,
    string? InstanceType = null,
    MachineProbe? Probe = null,
    MachineLifecyclePolicy? Lifecycle = null,
    Guid? FromSnapshot = null) : IIntegrationEvent;

/// <summary>
/// When a machine ends by itself: <paramref name="TtlSeconds"/> after it was created (or last kept alive) it is destroyed;
/// after <paramref name="Idle"/>'s seconds without real work it is stopped, paused or destroyed. Either may be absent.
/// </summary>
public sealed record MachineLifecyclePolicy(int? TtlSeconds, IdlePolicy? Idle);

/// <summary>What a machine idle for <paramref name="AfterSeconds"/> undergoes: <c>stop</c>, <c>pause</c> or <c>destroy</c>.</summary>
public sealed record IdlePolicy(int AfterSeconds, string Action);

/// <summary>Its lifecycle policy was set (replacing the last one); <paramref name="ExpiresAt"/> is when its time-to-live ends.</summary>
public sealed record MachineLifecycleSet(Guid MachineId, Guid TenantId, MachineLifecyclePolicy Policy, DateTimeOffset? ExpiresAt, DateTimeOffset SetAt) : IIntegrationEvent;

/// <summary>Someone said it is still wanted: its time-to-live starts again (<paramref name="ExpiresAt"/>) and it counts as active.</summary>
public sealed record MachineKeptAlive(Guid MachineId, Guid TenantId, DateTimeOffset? ExpiresAt, DateTimeOffset KeptAt) : IIntegrationEvent;

/// <summary>
/// A warning: its time-to-live ends (<paramref name="Reason"/> <c>ttl</c>) or its idleness reaches its policy (<c>idle</c>)
/// at <paramref name="ActsAt"/>, when it is stopped, paused or destroyed (<paramref name="Action"/>) unless it is kept
/// alive (or, for idleness, works) before.
/// </summary>
public sealed record MachineExpiring(Guid MachineId, Guid TenantId, string Reason, string Action, DateTimeOffset ActsAt, DateTimeOffset At) : IIntegrationEvent;

/// <summary>Its time-to-live ended or it stayed idle: <paramref name="Action"/> was requested (the next event says which operation).</summary>
public sealed record MachineExpired(Guid MachineId, Guid TenantId, string Reason, string Action, Guid OperationId, DateTimeOffset At) : IIntegrationEvent;

public sealed record MachineStartRequested(Guid MachineId, Guid TenantId, Guid OperationId, DateTimeOffset RequestedAt) : IIntegrationEvent;

public sealed record MachineStopRequested(Guid MachineId, Guid TenantId, Guid OperationId, DateTimeOffset RequestedAt) : IIntegrationEvent;

public sealed record MachinePauseRequested(Guid MachineId, Guid TenantId, Guid OperationId, DateTimeOffset RequestedAt) : IIntegrationEvent;

public sealed record MachineResumeRequested(Guid MachineId, Guid TenantId, Guid OperationId, DateTimeOffset RequestedAt) : IIntegrationEvent;

public sealed record MachineRestartRequested(Guid MachineId, Guid TenantId, Guid OperationId, DateTimeOffset RequestedAt) : IIntegrationEvent;

/// <summary>
/// The machine is to run again from its template: its host discards what the machine kept between runs (its container,
/// its cloud instance, its work files and namespace) and launches it afresh. Its id, address, tunnel and port forwards stay.
/// </summary>
public sealed record MachineRecreateRequested(Guid MachineId, Guid TenantId, Guid OperationId, DateTimeOffset RequestedAt) : IIntegrationEvent;

public sealed record MachineDestroyRequested(Guid MachineId, Guid TenantId, Guid OperationId, DateTimeOffset RequestedAt) : IIntegrationEvent;

/// <summary>
/// The machine is up and its guest answers. <paramref name="BootedFrom"/> is <c>cold</c> or <c>snapshot</c>;
/// <paramref name="Accelerator"/> (<c>kvm</c>, <c>tcg</c>) only for virtual machines.
/// </summary>
public sealed record MachineRunning(
    Guid MachineId,
    Guid TenantId,
    Guid OperationId,
    Guid HostId,
    NetworkAttachment? Network,
    string? Accelerator,
    string BootedFrom,
    double LaunchMilliseconds,
    DateTimeOffset RunningAt) : IIntegrationEvent;

/// <summary>Paused in place on its host, <paramref name="PauseMilliseconds"/> after the host was asked: nothing of it runs; its address, tunnel and forwards stay.</summary>
public sealed record MachinePaused(Guid MachineId, Guid TenantId, Guid OperationId, double PauseMilliseconds, DateTimeOffset PausedAt) : IIntegrationEvent;

/// <summary>Its host could not pause it: it runs on as before.</summary>
public sealed record MachinePauseFailed(Guid MachineId, Guid TenantId, Guid OperationId, string Reason, DateTimeOffset FailedAt) : IIntegrationEvent;

/// <summary>Running again after a pause, as it was, <paramref name="ResumeMilliseconds"/> after the host was asked.</summary>
public sealed record MachineResumed(Guid MachineId, Guid TenantId, Guid OperationId, double ResumeMilliseconds, DateTimeOffset ResumedAt) : IIntegrationEvent;

/// <summary>Stopped on request, or its main process ended with success (<paramref name="ExitCode"/> 0).</summary>
public sealed record MachineStopped(Guid MachineId, Guid TenantId, Guid? OperationId, int? ExitCode, DateTimeOffset StoppedAt) : IIntegrationEvent;

/// <summary>
/// The machine could not be launched, or died; <paramref name="Reason"/> says why in words a user can act on.
/// <paramref name="Step"/> is set when its creation failed at that step (<c>quota</c>, <c>network</c>, <c>launch</c>,
/// <c>tunnel</c>, <c>registration</c>): everything the creation had taken is given back by then.
/// </summary>
public sealed record MachineFailed(Guid MachineId, Guid TenantId, Guid? OperationId, string Reason, int? ExitCode, DateTimeOffset FailedAt, string? Step = null) : IIntegrationEvent;

/// <summary>
/// One step of creating or destroying the machine is done (<c>quota</c>, <c>network</c>, <c>launch</c>, <c>tunnel</c>,
/// <c>registration</c>; <c>unregister</c>, <c>detach-tunnel</c>, <c>tear-down</c>, <c>release-network</c>,
/// <c>release-quota</c>); <paramref name="Detail"/> says what it came to.
/// </summary>
public sealed record MachineStepCompleted(Guid MachineId, Guid TenantId, Guid OperationId, string Step, string Detail, DateTimeOffset CompletedAt) : IIntegrationEvent;

/// <summary>Gone from its host: no process, namespace or file of it remains.</summary>
public sealed record MachineDestroyed(Guid MachineId, Guid TenantId, Guid OperationId, Guid HostId, DateTimeOffset DestroyedAt) : IIntegrationEvent;

/// <summary>
/// Command from another service (the healing watchdog): start a stopped or failed machine, as a user's
/// <c>POST /machines/{id}/start</c> would. <paramref name="RequestedBy"/> is the actor recorded with it.
/// Idempotent by <paramref name="OperationId"/>; a machine whose state does not allow it is left alone.
/// </summary>
public sealed record StartMachine(Guid MachineId, Guid TenantId, Guid OperationId, string RequestedBy);

/// <summary>
/// Command from another service (the healing watchdog, for an unhealthy machine): restart a running machine, as a
/// user's <c>POST /machines/{id}/restart</c> would. Idempotent by <paramref name="OperationId"/>; a machine whose
/// state does not allow it is left alone.
/// </summary>
public sealed record RestartMachine(Guid MachineId, Guid TenantId, Guid OperationId, string RequestedBy);

/// <summary>
/// Command from another service (the healing watchdog, when a machine's exit address changed): run the machine again
/// from its template, as a user's <c>POST /machines/{id}/recreate</c> would — what it kept on its host (disk, container,
/// cloud instance) is discarded first; its id, address and tunnel stay. Idempotent by <paramref name="OperationId"/>;
/// a machine whose state does not allow it is left alone.
/// </summary>
public sealed record RecreateMachine(Guid MachineId, Guid TenantId, Guid OperationId, string RequestedBy);
