using System.Collections.Immutable;
using Platform.Contracts.Provisioning;

namespace Platform.Provisioning.Machines;

public static class MachineStates
{
    public const string Creating = "creating";
    public const string Starting = "starting";
    public const string Running = "running";
    public const string Pausing = "pausing";
    public const string Paused = "paused";
    public const string Resuming = "resuming";
    public const string Stopping = "stopping";
    public const string Stopped = "stopped";
    public const string Restarting = "restarting";
    public const string Destroying = "destroying";
    public const string Destroyed = "destroyed";
    public const string Failed = "failed";

    public static IReadOnlyList<string> All { get; } = [Creating, Starting, Running, Pausing, Paused, Resuming, Stopping, Stopped, Restarting, Destroying, Destroyed, Failed];
}

/// <summary>An operation in flight on a machine: what was asked (create, start, stop, pause, resume, restart, recreate, destroy) and when.</summary>
public sealed record PendingOperation(Guid Id, string Type, DateTimeOffset RequestedAt)
{
    /// <summary>The state that means this operation succeeded.</summary>
    public string Goal => Type switch
    {
        "stop" => MachineStates.Stopped,
        "pause" => MachineStates.Paused,
        "destroy" => MachineStates.Destroyed,
        _ => MachineStates.Running,
    };
}

/// <summary>
/// A machine, folded from its stream <c>machine-{id}</c>. Users change it only through <see cref="Decide"/>:
/// a request the current state does not allow is refused, never ignored; reports from the host are folded
/// in only when they still mean something (a late report about a machine being destroyed changes nothing).
/// </summary>
public sealed record Machine(
    Guid Id,
    Guid TenantId,
    string Name,
    string Kind,
    string Driver,
    Guid HostId,
    TemplateRef Template,
    MachineShape Shape,
    ImmutableSortedDictionary<string, string> Labels,
    IReadOnlyList<string>? Command,
    string Boot,
    string State,
    PendingOperation? Pending,
    NetworkAttachment? Network,
    string? Accelerator,
    string? BootedFrom,
    string? LastError,
    int? ExitCode,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    Guid? ExitNodeId = null,
    string? CreationFailedAt = null,
    string? Region = null,
    string? InstanceType = null,
    MachineProbe? Probe = null)
{
    /// <summary>The snapshot it was made from, which it starts from at every launch; null for a machine made from its template.</summary>
    public Guid? FromSnapshot { get; init; }

    /// <summary>The steps done so far of the operation in flight (see <see cref="MachineStepCompleted"/>).</summary>
    public ImmutableList<string> Steps { get; init; } = [];

    /// <summary>When it ends by itself: after its time-to-live, or idle (see <see cref="DecideExpiry"/>); null for never.</summary>
    public MachineLifecyclePolicy? Lifecycle { get; init; }

    /// <summary>When its time-to-live ends: its creation, the last policy set or keepalive, plus the time-to-live.</summary>
    public DateTimeOffset? ExpiresAt { get; init; }

    /// <summary>The last time its own events show it was wanted or at work (running, resumed, kept alive, a command or file change).</summary>
    public DateTimeOffset ActiveSince { get; init; }

    /// <summary>The warning given last (<see cref="MachineExpiring"/>), until the machine expires or is wanted again.</summary>
    public MachineExpiring? Expiring { get; init; }

    /// <summary>The last commands and file changes recorded from inside it (their process and change ids): a repeated report records nothing.</summary>
    public ImmutableQueue<Guid> RecentGuestActivity { get; init; } = [];

    private const int RecentGuestActivityKept = 256;

    public static string StreamOf(Guid machineId) => $"machine-{machineId}";

    public static Machine Create(MachineRequested requested) => new(
        requested.MachineId, requested.TenantId, requested.Name, requested.Kind, requested.Driver, requested.HostId, requested.Template,
        requested.Shape, requested.Labels.ToImmutableSortedDictionary(), requested.Command, requested.Boot, MachineStates.Creating,
        new PendingOperation(requested.OperationId, "create", requested.RequestedAt), null, null, null, null, null, requested.RequestedAt, requested.RequestedAt,
        requested.ExitNodeId, null, requested.Region, requested.InstanceType, requested.Probe)
    {
        Lifecycle = requested.Lifecycle,
        FromSnapshot = requested.FromSnapshot,
        ExpiresAt = requested.Lifecycle?.TtlSeconds is { } ttl ? requested.RequestedAt.AddSeconds(ttl) : null,
        ActiveSince = requested.RequestedAt,
    };

    public static Machine Evolve(Machine? machine, object @event) =>
        machine is null ? Create((MachineRequested)@event) : machine.Apply(@event);

    public Machine Apply(object @event) => @event switch
    {
        MachineStartRequested e => Begin(MachineStates.Starting, new PendingOperation(e.OperationId, "start", e.RequestedAt)),
        MachineStopRequested e => Begin(MachineStates.Stopping, new PendingOperation(e.OperationId, "stop", e.RequestedAt)),
        MachinePauseRequested e => Begin(MachineStates.Pausing, new PendingOperation(e.OperationId, "pause", e.RequestedAt)),
        MachineResumeRequested e => Begin(MachineStates.Resuming, new PendingOperation(e.OperationId, "resume", e.RequestedAt)),
        MachinePaused e => this with { State = MachineStates.Paused, Pending = null, UpdatedAt = e.PausedAt },
        MachinePauseFailed e => this with { State = MachineStates.Running, Pending = null, LastError = e.Reason, UpdatedAt = e.FailedAt },
        MachineResumed e => this with { State = MachineStates.Running, Pending = null, LastError = null, UpdatedAt = e.ResumedAt, ActiveSince = e.ResumedAt, Expiring = null },
        MachineRestartRequested e => Begin(MachineStates.Restarting, new PendingOperation(e.OperationId, "restart", e.RequestedAt)),
        MachineRecreateRequested e => Begin(MachineStates.Restarting, new PendingOperation(e.OperationId, "recreate", e.RequestedAt)),
        MachineDestroyRequested e => Begin(MachineStates.Destroying, new PendingOperation(e.OperationId, "destroy", e.RequestedAt)),
        MachineRunning e => this with
        {
            State = MachineStates.Running, Pending = null, Network = e.Network ?? Network, Accelerator = e.Accelerator, BootedFrom = e.BootedFrom,
            LastError = null, ExitCode = null, UpdatedAt = e.RunningAt, ActiveSince = e.RunningAt, Expiring = null,
        },
        MachineLifecycleSet e => this with
        {
            Lifecycle = e.Policy is { TtlSeconds: null, Idle: null } ? null : e.Policy, ExpiresAt = e.ExpiresAt, ActiveSince = e.SetAt, Expiring = null, UpdatedAt = e.SetAt,
        },
        MachineKeptAlive e => this with { ExpiresAt = e.ExpiresAt ?? ExpiresAt, ActiveSince = e.KeptAt, Expiring = null, UpdatedAt = e.KeptAt },
        MachineExpiring e => this with { Expiring = e },
        // The next idle action is a whole idle period away, whatever became of this one (a pause its host could not make).
        MachineExpired e => this with { Expiring = null, ActiveSince = e.At },
        MachineStopped e => this with { State = MachineStates.Stopped, Pending = null, ExitCode = e.ExitCode, UpdatedAt = e.StoppedAt },
        MachineFailed e => this with
        {
            State = MachineStates.Failed, Pending = null, LastError = e.Reason, ExitCode = e.ExitCode, UpdatedAt = e.FailedAt, CreationFailedAt = e.Step ?? CreationFailedAt,
        },
        MachineStepCompleted e when Awaits(e.OperationId) => this with { Steps = Steps.Add(e.Step), UpdatedAt = e.CompletedAt },
        MachineDestroyed e => this with { State = MachineStates.Destroyed, Pending = null, UpdatedAt = e.DestroyedAt },
        MachineCommandRan e => Remember(e.ProcessId) with { ActiveSince = Later(ActiveSince, e.EndedAt) },
        MachineFileWritten e => Remember(e.ChangeId) with { ActiveSince = Later(ActiveSince, e.WrittenAt) },
        MachineFileDeleted e => Remember(e.ChangeId) with { ActiveSince = Later(ActiveSince, e.DeletedAt) },
        _ => this,
    };

    /// <summary>Whether its driver can pause it in place (a host's kinds can; a cloud's instance or a simulated machine cannot).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool Pausable => Driver is not ("aws" or "gcp" or "azure" or "simulated");

    private static DateTimeOffset Later(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;

    private Machine Remember(Guid activity)
    {
        var recent = RecentGuestActivity.Enqueue(activity);
        return this with { RecentGuestActivity = recent.Count() > RecentGuestActivityKept ? recent.Dequeue() : recent };
    }

    /// <summary>What its host's report that a command run inside it ended records: the command, once.</summary>
    public IReadOnlyList<object> Decide(GuestCommandEnded ended) =>
        RecentGuestActivity.Contains(ended.ProcessId) ? []
            : [new MachineCommandRan(Id, TenantId, ended.ProcessId, ended.Argv, ended.User, ended.ExitCode, ended.DurationMs, ended.TimedOut, ended.Actor, ended.EndedAt)];

    /// <summary>What its host's report that a file inside it changed records: the write or the deletion, once.</summary>
    public IReadOnlyList<object> Decide(GuestFileChanged changed) =>
        RecentGuestActivity.Contains(changed.ChangeId) ? []
            : changed.Change == "deleted" ? [new MachineFileDeleted(Id, TenantId, changed.ChangeId, changed.Path, changed.Recursive, changed.Actor, changed.ChangedAt)]
            : [new MachineFileWritten(Id, TenantId, changed.ChangeId, changed.Path, changed.Size ?? 0, changed.Sha256, changed.Actor, changed.ChangedAt)];

    private Machine Begin(string state, PendingOperation operation) => this with { State = state, Pending = operation, Steps = [], UpdatedAt = operation.RequestedAt };

    /// <summary>What a user's request on this machine records, or a refusal naming the state it is in.</summary>
    public object Decide(string action, Guid operationId, DateTimeOffset now) => (action, State) switch
    {
        ("start", MachineStates.Stopped or MachineStates.Failed) when CreationFailedAt is null => new MachineStartRequested(Id, TenantId, operationId, now),
        ("stop", MachineStates.Running or MachineStates.Paused) => new MachineStopRequested(Id, TenantId, operationId, now),
        ("pause", MachineStates.Running) when !Pausable =>
            throw new IllegalTransitionException(action, State, $"A {Driver} machine cannot be paused: stop it instead."),
        ("pause", MachineStates.Running) => new MachinePauseRequested(Id, TenantId, operationId, now),
        ("resume", MachineStates.Paused) => new MachineResumeRequested(Id, TenantId, operationId, now),
        ("restart", MachineStates.Running) => new MachineRestartRequested(Id, TenantId, operationId, now),
        ("recreate", MachineStates.Running or MachineStates.Paused or MachineStates.Stopped or MachineStates.Failed) when CreationFailedAt is null => new MachineRecreateRequested(Id, TenantId, operationId, now),
        ("destroy", not (MachineStates.Destroying or MachineStates.Destroyed)) => new MachineDestroyRequested(Id, TenantId, operationId, now),
        ("start" or "recreate", MachineStates.Failed) => throw new IllegalTransitionException(action, State, $"Its creation failed at the {CreationFailedAt} step and was undone: destroy it and create another."),
        _ => throw new IllegalTransitionException(action, State),
    };

    /// <summary>
    /// A new lifecycle policy, replacing the last (its time-to-live counted from <paramref name="now"/>); refused once the machine
    /// is being destroyed.
    /// </summary>
    public MachineLifecycleSet SetLifecycle(MachineLifecyclePolicy policy, DateTimeOffset now) => State is MachineStates.Destroying or MachineStates.Destroyed
        ? throw new IllegalTransitionException("set its lifecycle", State)
        : new MachineLifecycleSet(Id, TenantId, policy, policy.TtlSeconds is { } ttl ? now.AddSeconds(ttl) : null, now);

    /// <summary>Still wanted: its time-to-live starts again from <paramref name="now"/> and it counts as active.</summary>
    public MachineKeptAlive KeepAlive(DateTimeOffset now) => State is MachineStates.Destroying or MachineStates.Destroyed
        ? throw new IllegalTransitionException("be kept alive", State)
        : new MachineKeptAlive(Id, TenantId, Lifecycle?.TtlSeconds is { } ttl ? now.AddSeconds(ttl) : null, now);

    /// <summary>
    /// What its lifecycle policy says at <paramref name="now"/>, given the last work its host saw in it
    /// (<paramref name="lastWorkAt"/>: CPU, network, running commands, API access): nothing; a warning once the action is
    /// less than <paramref name="warning"/> away (at most half the policy's span); or, once it is due, that it expired and
    /// the request of its action (<paramref name="operationId"/>). A time-to-live ends any machine not being destroyed by a
    /// destroy; idleness counts only while it runs.
    /// </summary>
    public IReadOnlyList<object> DecideExpiry(DateTimeOffset now, DateTimeOffset? lastWorkAt, TimeSpan warning, Guid operationId)
    {
        if (NextExpiry(lastWorkAt) is not { } due)
        {
            return [];
        }

        if (now >= due.At)
        {
            var expired = new MachineExpired(Id, TenantId, due.Reason, due.Action, operationId, now);
            try
            {
                return [expired, Decide(due.Action, operationId, now)];
            }
            catch (IllegalTransitionException)
            {
                // Its state does not allow the action (a driver that cannot pause): the expiry is recorded, the next is a whole period away.
                return [expired];
            }
        }

        var window = TimeSpan.FromTicks(Math.Min(warning.Ticks, due.Span.Ticks / 2));
        return now >= due.At - window && (Expiring is not { } given || given.Reason != due.Reason || given.ActsAt != due.At)
            ? [new MachineExpiring(Id, TenantId, due.Reason, due.Action, due.At, now)]
            : [];
    }

    /// <summary>The action its policy takes next and when: the earlier of the time-to-live's end and the idle deadline.</summary>
    private Expiry? NextExpiry(DateTimeOffset? lastWorkAt)
    {
        if (Lifecycle is not { } policy || Pending is not null || State is MachineStates.Creating or MachineStates.Destroying or MachineStates.Destroyed)
        {
            return null;
        }

        var ttl = ExpiresAt is { } expires && policy.TtlSeconds is { } seconds
            ? new Expiry("ttl", "destroy", expires, TimeSpan.FromSeconds(seconds))
            : null;
        var idle = State == MachineStates.Running && policy.Idle is { } idlePolicy
            ? new Expiry("idle", idlePolicy.Action, Later(ActiveSince, lastWorkAt ?? ActiveSince).AddSeconds(idlePolicy.AfterSeconds), TimeSpan.FromSeconds(idlePolicy.AfterSeconds))
            : null;
        return ttl is not null && (idle is null || ttl.At <= idle.At) ? ttl : idle;
    }

    /// <summary>An action a lifecycle policy takes: why, what, when, and the span of the policy it ends.</summary>
    private sealed record Expiry(string Reason, string Action, DateTimeOffset At, TimeSpan Span);

    /// <summary>
    /// What its host's report that it runs records: running, if it still waits for that start or restart; nothing for a
    /// late or repeated report.
    /// </summary>
    public IReadOnlyList<object> Decide(MachineLaunched launched, DateTimeOffset now) =>
        AwaitsLaunch(launched.OperationId) ? [RunningAs(launched.OperationId, launched, now)] : [];

    /// <summary>What its host's report that it could not start records: failed, if it still waits for that start or restart.</summary>
    public IReadOnlyList<object> Decide(MachineLaunchFailed failed, DateTimeOffset now) =>
        AwaitsLaunch(failed.OperationId) ? [new MachineFailed(Id, TenantId, failed.OperationId, failed.Reason, null, now)] : [];

    /// <summary>
    /// What its host's report that it halted records: stopped, if it was being stopped. A halt that is the first half of a
    /// restart records nothing: the machine is launched again (<see cref="RelaunchesAfter"/>).
    /// </summary>
    public IReadOnlyList<object> Decide(MachineHalted halted, DateTimeOffset now) =>
        Awaits(halted.OperationId) && State == MachineStates.Stopping ? [new MachineStopped(Id, TenantId, halted.OperationId, null, now)] : [];

    /// <summary>What its host's report that it froze records: paused, if it was being paused (a repeated report records nothing).</summary>
    public IReadOnlyList<object> Decide(MachineFrozen frozen, DateTimeOffset now) =>
        Awaits(frozen.OperationId) && State == MachineStates.Pausing ? [new MachinePaused(Id, TenantId, frozen.OperationId, frozen.Milliseconds, now)] : [];

    /// <summary>What its host's report that it runs again records: running, if it was being resumed.</summary>
    public IReadOnlyList<object> Decide(MachineThawed thawed, DateTimeOffset now) =>
        Awaits(thawed.OperationId) && State == MachineStates.Resuming ? [new MachineResumed(Id, TenantId, thawed.OperationId, thawed.Milliseconds, now)] : [];

    /// <summary>
    /// What its host's report that it could not pause or resume it records: a pause that failed leaves it running (the
    /// reason kept); a resume that failed leaves nothing of it running, so it failed.
    /// </summary>
    public IReadOnlyList<object> Decide(MachineFreezeFailed failed, DateTimeOffset now) => State switch
    {
        _ when !Awaits(failed.OperationId) => [],
        MachineStates.Pausing => [new MachinePauseFailed(Id, TenantId, failed.OperationId, failed.Reason, now)],
        MachineStates.Resuming => [new MachineFailed(Id, TenantId, failed.OperationId, $"it could not be resumed: {failed.Reason}", null, now)],
        _ => [],
    };

    /// <summary>Whether the halt is the first half of a restart or a recreate, after which it is launched again under the same operation.</summary>
    public bool RelaunchesAfter(MachineHalted halted) => Awaits(halted.OperationId) && State == MachineStates.Restarting;

    /// <summary>What its host's report that its main process ended records: stopped or failed, if it was running (paused, or on the way to or from it, included).</summary>
    public IReadOnlyList<object> Decide(MachineExited exited, DateTimeOffset now) =>
        State is MachineStates.Running or MachineStates.Pausing or MachineStates.Paused or MachineStates.Resuming ? [EndedBy(exited, now)] : [];

    /// <summary>What a step of the operation in flight records: the step, once, while the machine still waits for that operation.</summary>
    public IReadOnlyList<object> Decide(MachineStepCompleted step) =>
        Awaits(step.OperationId) && !Steps.Contains(step.Step) ? [step] : [];

    /// <summary>
    /// What the end of its creation records: running, as <paramref name="launched"/> reported it, and (when its process
    /// ended meanwhile, <paramref name="exitedEarly"/>) stopped or failed right after; nothing once it is not creating.
    /// </summary>
    public IReadOnlyList<object> Created(Guid operationId, MachineLaunched launched, MachineExited? exitedEarly, DateTimeOffset now)
    {
        if (!Awaits(operationId) || State != MachineStates.Creating)
        {
            return [];
        }

        var running = RunningAs(operationId, launched, now);
        return exitedEarly is { } exit ? [running, EndedBy(exit, now)] : [running];
    }

    /// <summary>
    /// What the end of a flow that gave everything back records: destroyed, for a destroy; failed at
    /// <paramref name="failedStep"/>, for a creation; null when neither is pending.
    /// </summary>
    public object? Finished(string? failedStep, string? failureReason, DateTimeOffset now) => this switch
    {
        { State: MachineStates.Destroying, Pending: { } destroy } => new MachineDestroyed(Id, TenantId, destroy.Id, HostId, now),
        { State: MachineStates.Creating, Pending: { } create } => new MachineFailed(Id, TenantId, create.Id, $"creation failed at the {failedStep} step: {failureReason}", null, now, failedStep),
        _ => null,
    };

    /// <summary>A start or restart of <paramref name="operationId"/> that still waits for its host.</summary>
    private bool AwaitsLaunch(Guid operationId) => Awaits(operationId) && State is MachineStates.Starting or MachineStates.Restarting;

    private MachineRunning RunningAs(Guid operationId, MachineLaunched launched, DateTimeOffset now) =>
        new(Id, TenantId, operationId, launched.HostId, launched.Network, launched.Accelerator, launched.BootedFrom, launched.LaunchMilliseconds, now);

    /// <summary>What its main process ending without being asked records: stopped (exit code 0) or failed.</summary>
    public object EndedBy(MachineExited exit, DateTimeOffset now) => exit.ExitCode == 0
        ? new MachineStopped(Id, TenantId, null, 0, now)
        : new MachineFailed(Id, TenantId, null, exit.Reason, exit.ExitCode, now);

    /// <summary>The operation a host's report ends, when the machine still waits for it.</summary>
    public bool Awaits(Guid operationId) => Pending?.Id == operationId;
}

/// <summary>A user asked for something the machine's state does not allow (stop a stopped machine).</summary>
public sealed class IllegalTransitionException(string action, string state, string? why = null)
    : Exception($"A machine that is {state} cannot {action}." + (why is null ? "" : " " + why))
{
    public string Action { get; } = action;

    public string State { get; } = state;
}
