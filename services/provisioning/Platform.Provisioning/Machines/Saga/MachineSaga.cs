using MassTransit;
using Platform.Contracts.Networking;
using Platform.Contracts.Provisioning;
using Platform.Contracts.Tenancy;
using Platform.Messaging.Relay;
using Platform.Provisioning.Hosts;

namespace Platform.Provisioning.Machines.Saga;

/// <summary>
/// Creates a machine — quota → network → launch → tunnel (when it names an exit node) → registration → ready — and
/// destroys it by the mirror flow. A creation step that fails, or stays unanswered past its deadline and attempts,
/// fails the creation: what was taken is given back in reverse (unregister, detach the tunnel, tear the machine down,
/// release the network, release the quota) and the machine ends <c>failed</c> naming the step and the reason. Every
/// command it issues is idempotent by machine id, so re-issuing one after a deadline, or handling a message twice
/// after a crash, does no harm.
/// </summary>
public sealed class MachineSaga : MassTransitStateMachine<MachineSagaState>
{
    private readonly MachineSagaOptions _options;
    private readonly Dictionary<string, State> _stateOfStep;

    public MachineSaga(MachineSagaOptions options)
    {
        _options = options;
        InstanceState(s => s.CurrentState);

        Event(() => Requested, e => e.CorrelateById(m => m.Message.MachineId));
        Event(() => DestroyRequested, e => e.CorrelateById(m => m.Message.MachineId));
        Event(() => QuotaReserved, e => Existing(e, m => m.Message.MachineId));
        Event(() => QuotaRejected, e => Existing(e, m => m.Message.MachineId));
        Event(() => NetworkAllocated, e => Existing(e, m => m.Message.MachineId));
        Event(() => NetworkRefused, e => Existing(e, m => m.Message.MachineId));
        Event(() => Launched, e => Existing(e, m => m.Message.MachineId));
        Event(() => LaunchFailed, e => Existing(e, m => m.Message.MachineId));
        Event(() => TunnelAttached, e => Existing(e, m => m.Message.MachineId));
        Event(() => TunnelFailed, e => Existing(e, m => m.Message.MachineId));
        Event(() => Registered, e => Existing(e, m => m.Message.MachineId));
        Event(() => Unregistered, e => Existing(e, m => m.Message.MachineId));
        Event(() => TunnelDetached, e => Existing(e, m => m.Message.MachineId));
        Event(() => TornDown, e => Existing(e, m => m.Message.MachineId));
        Event(() => NetworkReleased, e => Existing(e, m => m.Message.MachineId));
        Event(() => QuotaReleased, e => Existing(e, m => m.Message.MachineId));
        Event(() => Overdue, e => Existing(e, m => m.Message.MachineId));
        Event(() => Exited, e => Existing(e, m => m.Message.MachineId));

        _stateOfStep = new Dictionary<string, State>
        {
            [MachineSteps.Quota] = ReservingQuota,
            [MachineSteps.Network] = AllocatingNetwork,
            [MachineSteps.Launch] = Launching,
            [MachineSteps.Tunnel] = AttachingTunnel,
            [MachineSteps.Registration] = Registering,
            [MachineSteps.Unregister] = Unregistering,
            [MachineSteps.DetachTunnel] = DetachingTunnel,
            [MachineSteps.TearDown] = TearingDown,
            [MachineSteps.ReleaseNetwork] = ReleasingNetwork,
            [MachineSteps.ReleaseQuota] = ReleasingQuota,
        };

        Initially(
            When(Requested).ThenAsync(BeginCreationAsync),
            When(DestroyRequested).ThenAsync(BeginDestroyAfterwardsAsync));

        During(ReservingQuota,
            When(QuotaReserved).ThenAsync(c => CompletedAsync(c, MachineSteps.Quota, $"reserved {Describe(c.Message.Reserved)}")),
            When(QuotaRejected).ThenAsync(c => FailAsync(c, MachineSteps.Quota, taken: false,
                $"the tenant's {c.Message.Limit} quota would be {c.Message.Used + c.Message.Requested} of {c.Message.Max}")));

        During(AllocatingNetwork,
            When(NetworkAllocated).ThenAsync(c =>
            {
                c.Saga.Network = new NetworkAttachment(NetworkAttachment.NamespaceOf(c.Saga.CorrelationId), c.Message.Address, c.Message.PrefixLength, c.Message.Gateway,
                    NetworkAttachment.MacOf(c.Saga.CorrelationId));
                return CompletedAsync(c, MachineSteps.Network, $"{c.Message.Address}/{c.Message.PrefixLength} in {c.Message.Subnet}");
            }),
            When(NetworkRefused).ThenAsync(c => FailAsync(c, MachineSteps.Network, taken: false, c.Message.Reason)));

        During(Launching,
            When(Launched, c => c.Message.OperationId == c.Saga.OperationId).ThenAsync(c =>
            {
                c.Saga.Launched = c.Message;
                return CompletedAsync(c, MachineSteps.Launch, $"on host {c.Message.HostId}, booted from {c.Message.BootedFrom} in {c.Message.LaunchMilliseconds:0} ms");
            }),
            When(LaunchFailed, c => c.Message.OperationId == c.Saga.OperationId).ThenAsync(c => FailAsync(c, MachineSteps.Launch, taken: true, c.Message.Reason)));

        During(AttachingTunnel,
            When(TunnelAttached).ThenAsync(c => CompletedAsync(c, MachineSteps.Tunnel, $"through exit node {c.Message.ExitNodeId} as {c.Message.TunnelAddress}")),
            When(TunnelFailed).ThenAsync(c => FailAsync(c, MachineSteps.Tunnel, taken: false, c.Message.Reason)));

        During(Registering,
            When(Registered).ThenAsync(c => CompletedAsync(c, MachineSteps.Registration, $"in the tenant's inventory, owned by {c.Message.Owner}")));

        During(Unregistering, When(Unregistered).ThenAsync(c => ReleasedAsync(c, MachineSteps.Unregister, "removed from the tenant's inventory")));
        During(DetachingTunnel, When(TunnelDetached).ThenAsync(c => ReleasedAsync(c, MachineSteps.DetachTunnel, "tunnel removed")));
        During(TearingDown, When(TornDown, c => c.Message.OperationId == c.Saga.OperationId).ThenAsync(c => ReleasedAsync(c, MachineSteps.TearDown, $"removed from host {c.Message.HostId}")));
        During(ReleasingNetwork, When(NetworkReleased).ThenAsync(c => ReleasedAsync(c, MachineSteps.ReleaseNetwork,
            c.Message.Address is null ? "held no address" : $"{c.Message.Address} quarantined until {c.Message.QuarantinedUntil:O}")));
        During(ReleasingQuota, When(QuotaReleased).ThenAsync(c => ReleasedAsync(c, MachineSteps.ReleaseQuota, $"released {Describe(c.Message.Released)}")));

        // A destroy while the machine is being created stops the creation where it is and gives back what it took.
        During(new[] { ReservingQuota, AllocatingNetwork, Launching, AttachingTunnel, Registering, Ready },
            When(DestroyRequested).ThenAsync(async c =>
            {
                c.Saga.OperationId = c.Message.OperationId;
                await ReleaseNextAsync(c);
            }));

        // A machine whose process ends while its creation goes on ran nonetheless: it ends stopped or failed once it is created.
        During(new[] { Launching, AttachingTunnel, Registering }, When(Exited).Then(c => c.Saga.ExitedEarly = c.Message));
        // Reported just as the creation ended, it may have reached HostReports while the machine was still creating.
        During(Ready, When(Exited).ThenAsync(c => Recorder(c).ExitedAsync(c, c.Saga, c.Message)));

        DuringAny(When(Overdue, c => c.Message.Step == c.Saga.Step && c.Message.Attempt == c.Saga.Attempts).ThenAsync(OverdueAsync));

        OnUnhandledEvent(context => context.Ignore());
        SetCompletedWhenFinalized();
    }

    public State ReservingQuota { get; private set; } = null!;

    public State AllocatingNetwork { get; private set; } = null!;

    public State Launching { get; private set; } = null!;

    public State AttachingTunnel { get; private set; } = null!;

    public State Registering { get; private set; } = null!;

    public State Ready { get; private set; } = null!;

    public State Unregistering { get; private set; } = null!;

    public State DetachingTunnel { get; private set; } = null!;

    public State TearingDown { get; private set; } = null!;

    public State ReleasingNetwork { get; private set; } = null!;

    public State ReleasingQuota { get; private set; } = null!;

    public Event<MachineRequested> Requested { get; private set; } = null!;

    public Event<MachineDestroyRequested> DestroyRequested { get; private set; } = null!;

    public Event<QuotaReserved> QuotaReserved { get; private set; } = null!;

    public Event<QuotaRejected> QuotaRejected { get; private set; } = null!;

    public Event<NetworkAllocated> NetworkAllocated { get; private set; } = null!;

    public Event<NetworkAllocationRefused> NetworkRefused { get; private set; } = null!;

    public Event<MachineLaunched> Launched { get; private set; } = null!;

    public Event<MachineLaunchFailed> LaunchFailed { get; private set; } = null!;

    public Event<TunnelAttached> TunnelAttached { get; private set; } = null!;

    public Event<TunnelAttachFailed> TunnelFailed { get; private set; } = null!;

    public Event<MachineRegistered> Registered { get; private set; } = null!;

    public Event<MachineUnregistered> Unregistered { get; private set; } = null!;

    public Event<TunnelDetached> TunnelDetached { get; private set; } = null!;

    public Event<MachineTornDown> TornDown { get; private set; } = null!;

    public Event<NetworkReleased> NetworkReleased { get; private set; } = null!;

    public Event<QuotaReleased> QuotaReleased { get; private set; } = null!;

    public Event<MachineStepOverdue> Overdue { get; private set; } = null!;

    public Event<MachineExited> Exited { get; private set; } = null!;

    /// <summary>Replies about machines without a flow (made before it, or finished) are dropped, not faulted.</summary>
    private static void Existing<T>(IEventCorrelationConfigurator<MachineSagaState, T> correlation, Func<ConsumeContext<T>, Guid> machineId) where T : class
    {
        correlation.CorrelateById(machineId);
        correlation.OnMissingInstance(m => m.Discard());
    }

    private async Task BeginCreationAsync(BehaviorContext<MachineSagaState, MachineRequested> context)
    {
        var requested = context.Message;
        var machine = await Recorder(context).LoadAsync(requested.MachineId, context.CancellationToken);
        if (machine is null || !machine.Awaits(requested.OperationId) || machine.State != MachineStates.Creating)
        {
            // A late copy of a request whose flow ran already: nothing to do.
            await context.TransitionToState(Final);
            return;
        }

        var saga = context.Saga;
        saga.TenantId = requested.TenantId;
        saga.OperationId = requested.OperationId;
        saga.HostId = requested.HostId;
        saga.ExitNodeId = requested.ExitNodeId;
        saga.Owner = context.Headers.Get<string>(RelayHeaders.Actor) ?? "unknown";
        await EnterAsync(context, MachineSteps.Quota, machine);
    }

    /// <summary>A destroy of a machine whose flow has ended (its creation failed and was undone), or that predates the saga.</summary>
    private async Task BeginDestroyAfterwardsAsync(BehaviorContext<MachineSagaState, MachineDestroyRequested> context)
    {
        var machine = await Recorder(context).LoadAsync(context.Message.MachineId, context.CancellationToken);
        if (machine is null || !machine.Awaits(context.Message.OperationId))
        {
            await context.TransitionToState(Final);
            return;
        }

        var saga = context.Saga;
        saga.TenantId = machine.TenantId;
        saga.OperationId = context.Message.OperationId;
        saga.HostId = machine.HostId;
        saga.ExitNodeId = machine.ExitNodeId;
        saga.Network = machine.Network;
        if (machine.CreationFailedAt is null)
        {
            // Nothing says what it holds: give back everything a machine can hold (each release is idempotent).
            saga.Held = [MachineSteps.Quota, MachineSteps.Network, MachineSteps.Launch, .. machine.ExitNodeId is null ? Array.Empty<string>() : [MachineSteps.Tunnel], MachineSteps.Registration];
        }

        await ReleaseNextAsync(context);
    }

    private async Task CompletedAsync<T>(BehaviorContext<MachineSagaState, T> context, string step, string detail) where T : class
    {
        var recorder = Recorder(context);
        await recorder.StepCompletedAsync(context, context.Saga, step, detail);
        var next = step switch
        {
            MachineSteps.Quota => MachineSteps.Network,
            MachineSteps.Network => MachineSteps.Launch,
            MachineSteps.Launch when context.Saga.ExitNodeId is not null => MachineSteps.Tunnel,
            MachineSteps.Launch or MachineSteps.Tunnel => MachineSteps.Registration,
            _ => null,
        };
        if (next is not null)
        {
            await EnterAsync(context, next, null);
            return;
        }

        await recorder.ReadyAsync(context, context.Saga);
        context.Saga.Step = "";
        context.Saga.Deadline = null;
        await context.TransitionToState(Ready);
    }

    private async Task FailAsync<T>(BehaviorContext<MachineSagaState, T> context, string step, bool taken, string reason) where T : class
    {
        var saga = context.Saga;
        if (!taken)
        {
            // Refused: the step holds nothing to give back.
            saga.Held.Remove(step);
        }

        saga.FailedStep = step;
        saga.FailureReason = reason;
        await ReleaseNextAsync(context);
    }

    private async Task ReleasedAsync<T>(BehaviorContext<MachineSagaState, T> context, string step, string detail) where T : class
    {
        context.Saga.Held.Remove(MachineSteps.TakenBy(step));
        await Recorder(context).StepCompletedAsync(context, context.Saga, step, detail);
        await ReleaseNextAsync(context);
    }

    /// <summary>Gives back the last thing still held, or, when nothing is, ends the flow.</summary>
    private async Task ReleaseNextAsync<T>(BehaviorContext<MachineSagaState, T> context) where T : class
    {
        if (context.Saga.Held.Count > 0)
        {
            await EnterAsync(context, MachineSteps.ReleaseOf(context.Saga.Held[^1]), null);
            return;
        }

        await Recorder(context).FinishAsync(context, context.Saga);
        await context.TransitionToState(Final);
    }

    private async Task OverdueAsync(BehaviorContext<MachineSagaState, MachineStepOverdue> context)
    {
        var saga = context.Saga;
        if (MachineSteps.IsCreation(saga.Step) && saga.Attempts >= _options.MaxAttempts)
        {
            await FailAsync(context, saga.Step, taken: true,
                $"no answer to the {saga.Step} step after {saga.Attempts} attempts (the last waited {_options.TimeoutOf(saga.Step, saga.Attempts).TotalSeconds:0} s)");
            return;
        }

        saga.Attempts++;
        saga.Deadline = Time(context).GetUtcNow() + _options.TimeoutOf(saga.Step, saga.Attempts);
        await IssueAsync(context, saga.Step, null);
    }

    private async Task EnterAsync<T>(BehaviorContext<MachineSagaState, T> context, string step, Machine? machine) where T : class
    {
        var saga = context.Saga;
        saga.Step = step;
        saga.Attempts = 1;
        saga.Deadline = Time(context).GetUtcNow() + _options.TimeoutOf(step, 1);
        if (MachineSteps.IsCreation(step) && !saga.Held.Contains(step))
        {
            // Held from the moment its command may be acted on: a reply lost in a crash still gets it given back.
            saga.Held.Add(step);
        }

        await context.TransitionToState(_stateOfStep[step]);
        await IssueAsync(context, step, machine);
    }

    /// <summary>Issues the step's command (again): every one is idempotent by machine id.</summary>
    private static async Task IssueAsync<T>(BehaviorContext<MachineSagaState, T> context, string step, Machine? machine) where T : class
    {
        var saga = context.Saga;
        var (machineId, tenantId) = (saga.CorrelationId, saga.TenantId);
        async Task<Machine> MachineAsync() => machine ??= await Recorder(context).LoadAsync(machineId, context.CancellationToken)
            ?? throw new InvalidOperationException($"Machine {machineId} has a flow but no stream.");

        switch (step)
        {
            case MachineSteps.Quota:
                var shape = (await MachineAsync()).Shape;
                await context.Publish(new ReserveQuota(machineId, tenantId,
                    new QuotaResources(1, shape.Vcpus, shape.MemoryMiB, shape.DiskMiB, saga.ExitNodeId is null ? 0 : 1, 0)));
                break;
            case MachineSteps.Network:
                await context.Publish(new AllocateNetwork(machineId, tenantId));
                break;
            case MachineSteps.Launch:
                await SendToHostAsync(context, MachineLifecycle.Launch(await MachineAsync() with { Network = saga.Network }, saga.OperationId));
                break;
            case MachineSteps.Tunnel:
                var network = saga.Network ?? throw new InvalidOperationException($"Machine {machineId} reached the tunnel step without a network.");
                await context.Publish(new AttachTunnel(machineId, tenantId, saga.HostId, saga.ExitNodeId!.Value, network.Address, network.Gateway, network.PrefixLength));
                break;
            case MachineSteps.Registration:
                var registering = await MachineAsync();
                await context.Publish(new RegisterMachine(machineId, tenantId, registering.Name, registering.Kind, saga.Owner));
                break;
            case MachineSteps.Unregister:
                await context.Publish(new UnregisterMachine(machineId, tenantId));
                break;
            case MachineSteps.DetachTunnel:
                await context.Publish(new DetachTunnel(machineId, tenantId));
                break;
            case MachineSteps.TearDown:
                await SendToHostAsync(context, new TearDownMachine(machineId, tenantId, saga.OperationId));
                break;
            case MachineSteps.ReleaseNetwork:
                await context.Publish(new ReleaseNetwork(machineId, tenantId));
                break;
            case MachineSteps.ReleaseQuota:
                await context.Publish(new ReleaseQuota(machineId, tenantId));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(step), step, "not a step of the machine saga");
        }
    }

    private static Task SendToHostAsync<T, TCommand>(BehaviorContext<MachineSagaState, T> context, TCommand command) where T : class where TCommand : class =>
        context.SendToHostAsync(context.Saga.HostId, command, context.CancellationToken);

    private static string Describe(QuotaResources resources) =>
        string.Join(", ", resources.Named().Where(r => r.Amount > 0).Select(r => $"{r.Amount} {r.Name}"));

    private static MachineRecorder Recorder(ConsumeContext context) => context.GetServiceOrCreateInstance<MachineRecorder>();

    private static TimeProvider Time(ConsumeContext context) => context.GetServiceOrCreateInstance<TimeProvider>();
}
