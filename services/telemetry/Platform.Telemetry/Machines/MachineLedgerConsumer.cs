using MassTransit;
using Platform.Contracts.Provisioning;
using Platform.Messaging.Inbox;
using Platform.Telemetry.Health;

namespace Platform.Telemetry.Machines;

/// <summary>
/// Folds provisioning's machine events into the <see cref="MachineLedger"/>, once per event (the inbox). A machine that
/// starts or ends a run also starts its health afresh: checks of a previous run say nothing about this one.
/// </summary>
public sealed class MachineLedgerConsumer(Inbox inbox, MachineLedger ledger, HealthStore health) :
    IConsumer<MachineRequested>,
    IConsumer<MachineRunning>,
    IConsumer<MachineStopped>,
    IConsumer<MachineFailed>,
    IConsumer<MachineDestroyed>
{
    public Task Consume(ConsumeContext<MachineRequested> context) =>
        inbox.HandleOnceAsync(context, nameof(MachineLedgerConsumer), session => ledger.RequestedAsync(session, context.Message, context.CancellationToken));

    public Task Consume(ConsumeContext<MachineRunning> context) =>
        inbox.HandleOnceAsync(context, nameof(MachineLedgerConsumer), async session =>
        {
            var running = context.Message;
            await ledger.RunningAsync(session, running.MachineId, running.TenantId, running.RunningAt, context.CancellationToken);
            await health.ResetAsync(session, running.MachineId, running.TenantId, running.RunningAt, context.CancellationToken);
        });

    public Task Consume(ConsumeContext<MachineStopped> context) => EndedAsync(context, context.Message.MachineId, context.Message.TenantId, "stopped", context.Message.StoppedAt);

    public Task Consume(ConsumeContext<MachineFailed> context) => EndedAsync(context, context.Message.MachineId, context.Message.TenantId, "failed", context.Message.FailedAt);

    public Task Consume(ConsumeContext<MachineDestroyed> context) => EndedAsync(context, context.Message.MachineId, context.Message.TenantId, "destroyed", context.Message.DestroyedAt);

    private Task EndedAsync<T>(ConsumeContext<T> context, Guid machineId, Guid tenantId, string state, DateTimeOffset at) where T : class =>
        inbox.HandleOnceAsync(context, nameof(MachineLedgerConsumer), async session =>
        {
            await ledger.EndedAsync(session, machineId, state, at, context.CancellationToken);
            await health.ResetAsync(session, machineId, tenantId, at, context.CancellationToken);
        });
}

/// <summary>One event at a time: a run's start and end must be folded in the order provisioning recorded them.</summary>
public sealed class MachineLedgerConsumerDefinition : ConsumerDefinition<MachineLedgerConsumer>
{
    public MachineLedgerConsumerDefinition() => ConcurrentMessageLimit = 1;
}
