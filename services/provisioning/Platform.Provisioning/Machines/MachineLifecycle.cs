using MassTransit;
using Platform.Contracts.Provisioning;
using Platform.EventSourcing;
using Platform.Provisioning.Hosts;

namespace Platform.Provisioning.Machines;

/// <summary>
/// Turns a running machine's recorded requests (start, stop, pause, resume, restart, recreate) into commands for the host agent that runs it.
/// Every command is idempotent on the agent's side, so a request delivered twice does no harm. Creating and destroying
/// take more than the agent: the machine saga runs those.
/// </summary>
public sealed class MachineLifecycle(EventStore store) :
    IConsumer<MachineStartRequested>,
    IConsumer<MachineStopRequested>,
    IConsumer<MachinePauseRequested>,
    IConsumer<MachineResumeRequested>,
    IConsumer<MachineRestartRequested>,
    IConsumer<MachineRecreateRequested>
{

    public Task Consume(ConsumeContext<MachineStartRequested> context) =>
        WhenAwaitedAsync(context, context.Message.MachineId, context.Message.OperationId, machine => Launch(machine, context.Message.OperationId));

    public Task Consume(ConsumeContext<MachineStopRequested> context) =>
        WhenAwaitedAsync(context, context.Message.MachineId, context.Message.OperationId, machine => new HaltMachine(machine.Id, machine.TenantId, context.Message.OperationId));

    public Task Consume(ConsumeContext<MachinePauseRequested> context) =>
        WhenAwaitedAsync(context, context.Message.MachineId, context.Message.OperationId, machine => new PauseMachine(machine.Id, machine.TenantId, context.Message.OperationId));

    public Task Consume(ConsumeContext<MachineResumeRequested> context) =>
        WhenAwaitedAsync(context, context.Message.MachineId, context.Message.OperationId, machine => new ResumeMachine(machine.Id, machine.TenantId, context.Message.OperationId));

    public Task Consume(ConsumeContext<MachineRestartRequested> context) =>
        WhenAwaitedAsync(context, context.Message.MachineId, context.Message.OperationId, machine => new HaltMachine(machine.Id, machine.TenantId, context.Message.OperationId));

    /// <summary>Halted first, like a restart (a stopped or failed machine is halted already, and the agent says so); see <see cref="HostReports"/>.</summary>
    public Task Consume(ConsumeContext<MachineRecreateRequested> context) =>
        WhenAwaitedAsync(context, context.Message.MachineId, context.Message.OperationId, machine => new HaltMachine(machine.Id, machine.TenantId, context.Message.OperationId));

    /// <summary>The launch of the machine for that operation: fresh (what the host kept of it discarded first) when the operation is a recreate.</summary>
    public static LaunchMachine Launch(Machine machine, Guid operationId) => new(
        machine.Id, machine.TenantId, operationId, machine.Name, machine.Driver, machine.Template, machine.Shape, machine.Command, machine.Boot, machine.Network,
        machine.Region, machine.InstanceType, machine.Probe, Fresh: machine.Pending is { Type: "recreate" } pending && pending.Id == operationId, machine.FromSnapshot);

    /// <summary>Sends the command only while the machine still waits for that operation (a stale redelivery sends nothing).</summary>
    private async Task WhenAwaitedAsync<T>(ConsumeContext context, Guid machineId, Guid operationId, Func<Machine, T> command) where T : class
    {
        var machine = (await store.LoadAsync<Machine>(Machine.StreamOf(machineId), Machine.Evolve, context.CancellationToken)).State;
        if (machine is not null && machine.Awaits(operationId))
        {
            await context.SendToHostAsync(machine.HostId, command(machine), context.CancellationToken);
        }
    }
}

/// <summary>Requests other services send over the bus (the healing watchdog's starts, restarts and recreates).</summary>
public sealed class MachineCommands(MachineActions actions, ILogger<MachineCommands> logger) : IConsumer<StartMachine>, IConsumer<RestartMachine>, IConsumer<RecreateMachine>
{
    public Task Consume(ConsumeContext<StartMachine> context) =>
        RequestAsync(context, context.Message.MachineId, context.Message.TenantId, "start", context.Message.OperationId, context.Message.RequestedBy);

    public Task Consume(ConsumeContext<RestartMachine> context) =>
        RequestAsync(context, context.Message.MachineId, context.Message.TenantId, "restart", context.Message.OperationId, context.Message.RequestedBy);

    public Task Consume(ConsumeContext<RecreateMachine> context) =>
        RequestAsync(context, context.Message.MachineId, context.Message.TenantId, "recreate", context.Message.OperationId, context.Message.RequestedBy);

    private async Task RequestAsync(ConsumeContext context, Guid machineId, Guid tenantId, string action, Guid operationId, string requestedBy)
    {
        if (!await actions.RequestFromServiceAsync(machineId, tenantId, action, operationId, requestedBy, context.CorrelationId, context.CancellationToken))
        {
            logger.LogInformation("{Action} of machine {MachineId} requested by {Actor} changed nothing: the machine's state does not allow it", action, machineId, requestedBy);
        }
    }
}

/// <summary>
/// Folds what host agents report into the machines' streams. A report changes a machine only while it
/// still means something: the (re)start a machine waits for, the exit of a machine that was running. Reports
/// about creating and destroying belong to the machine saga.
/// </summary>
public sealed class HostReports(IEventStreams streams, TimeProvider time) :
    IConsumer<MachineLaunched>,
    IConsumer<MachineLaunchFailed>,
    IConsumer<MachineHalted>,
    IConsumer<MachineExited>,
    IConsumer<MachineFrozen>,
    IConsumer<MachineThawed>,
    IConsumer<MachineFreezeFailed>,
    IConsumer<GuestCommandEnded>,
    IConsumer<GuestFileChanged>
{
    public Task Consume(ConsumeContext<MachineLaunched> context) => DecideAsync(context, context.Message.MachineId, m => m.Decide(context.Message, time.GetUtcNow()));

    public Task Consume(ConsumeContext<MachineLaunchFailed> context) => DecideAsync(context, context.Message.MachineId, m => m.Decide(context.Message, time.GetUtcNow()));

    public async Task Consume(ConsumeContext<MachineHalted> context)
    {
        var halted = context.Message;
        Machine? relaunch = null;
        await DecideAsync(context, halted.MachineId, machine =>
        {
            relaunch = machine.RelaunchesAfter(halted) ? machine : null;
            return machine.Decide(halted, time.GetUtcNow());
        });
        if (relaunch is not null)
        {
            // The first half of a restart or a recreate: launch it again under the same operation (afresh for a recreate).
            await context.SendToHostAsync(relaunch.HostId, MachineLifecycle.Launch(relaunch, halted.OperationId), context.CancellationToken);
        }
    }

    public Task Consume(ConsumeContext<MachineExited> context) => DecideAsync(context, context.Message.MachineId, m => m.Decide(context.Message, time.GetUtcNow()));

    public Task Consume(ConsumeContext<MachineFrozen> context) => DecideAsync(context, context.Message.MachineId, m => m.Decide(context.Message, time.GetUtcNow()));

    public Task Consume(ConsumeContext<MachineThawed> context) => DecideAsync(context, context.Message.MachineId, m => m.Decide(context.Message, time.GetUtcNow()));

    public Task Consume(ConsumeContext<MachineFreezeFailed> context) => DecideAsync(context, context.Message.MachineId, m => m.Decide(context.Message, time.GetUtcNow()));

    public Task Consume(ConsumeContext<GuestCommandEnded> context) => DecideAsync(context, context.Message.MachineId, m => m.Decide(context.Message), context.Message.Actor);

    public Task Consume(ConsumeContext<GuestFileChanged> context) => DecideAsync(context, context.Message.MachineId, m => m.Decide(context.Message), context.Message.Actor);

    /// <summary>A report about a machine that is not known here records nothing.</summary>
    /// <param name="actor">Who the recorded events are by: the machine's host unless a user acted inside the machine.</param>
    private Task DecideAsync(ConsumeContext context, Guid machineId, Func<Machine, IReadOnlyList<object>> decide, string? actor = null) =>
        streams.DecideAsync<Machine>(Machine.StreamOf(machineId), Machine.Evolve, loaded => loaded.State is not { } machine
            ? Decision.Nothing
            : new Decision([new StreamAppend(Machine.StreamOf(machineId), loaded.ExpectedVersion, decide(machine))], Metadata(context, machine, actor)), context.CancellationToken);

    private static EventMetadata Metadata(ConsumeContext context, Machine machine, string? actor) =>
        new(context.CorrelationId, context.MessageId, machine.TenantId.ToString(), actor ?? $"host:{machine.HostId}");
}
