using MassTransit;
using Platform.Contracts.Provisioning;
using Platform.EventSourcing;
using Platform.Provisioning.Hosts;

namespace Platform.Provisioning.Machines.Saga;

/// <summary>
/// What the machine saga records in the machine's own stream: its steps, its readiness, its end. Every record is
/// decided on the machine's current state and appended with its version expected, so a message handled twice
/// records once.
/// </summary>
public sealed class MachineRecorder(IEventStreams streams, TimeProvider time)
{
    public async Task<Machine?> LoadAsync(Guid machineId, CancellationToken cancellationToken) =>
        (await streams.LoadAsync<Machine>(Machine.StreamOf(machineId), Machine.Evolve, cancellationToken)).State;

    public Task StepCompletedAsync(ConsumeContext context, MachineSagaState saga, string step, string detail) =>
        DecideAsync(context, saga, machine => machine.Decide(new MachineStepCompleted(machine.Id, machine.TenantId, saga.OperationId, step, detail, time.GetUtcNow())));

    /// <summary>The creation is done: the machine is running (and, if its process ended meanwhile, stopped or failed right after).</summary>
    public Task ReadyAsync(ConsumeContext context, MachineSagaState saga) =>
        DecideAsync(context, saga, machine => saga.Launched is { } launched ? machine.Created(saga.OperationId, launched, saga.ExitedEarly, time.GetUtcNow()) : []);

    /// <summary>
    /// The machine's process ended while it runs: stopped (exit 0) or failed. The host's report reaches the saga and
    /// <see cref="HostReports"/> alike; whichever sees the machine running records it, once.
    /// </summary>
    public Task ExitedAsync(ConsumeContext context, MachineSagaState saga, MachineExited exit) =>
        DecideAsync(context, saga, machine => machine.Decide(exit, time.GetUtcNow()));

    /// <summary>
    /// Everything the flow held is given back: a machine being destroyed is destroyed, a creation that failed ends
    /// failed. Either way it stops counting against its host, once.
    /// </summary>
    public Task FinishAsync(ConsumeContext context, MachineSagaState saga) =>
        streams.DecideAsync<Machine>(Machine.StreamOf(saga.CorrelationId), Machine.Evolve, loaded =>
        {
            var now = time.GetUtcNow();
            if (loaded.State is not { } machine || machine.Finished(saga.FailedStep, saga.FailureReason, now) is not { } end)
            {
                return [];
            }

            // A machine whose creation failed stopped counting against its host then.
            return machine.CreationFailedAt is null
                ? [new StreamAppend(Machine.StreamOf(machine.Id), loaded.ExpectedVersion, [end]),
                   new StreamAppend(HostCatalog.StreamOf(machine.HostId), ExpectedVersion.Any, [new MachineUnplaced(machine.HostId, machine.Id, machine.TenantId, machine.Shape, now)])]
                : [new StreamAppend(Machine.StreamOf(machine.Id), loaded.ExpectedVersion, [end])];
        }, Metadata(context, saga.TenantId), context.CancellationToken);

    private Task DecideAsync(ConsumeContext context, MachineSagaState saga, Func<Machine, IReadOnlyList<object>> decide) =>
        streams.DecideAsync<Machine>(Machine.StreamOf(saga.CorrelationId), Machine.Evolve,
            machine => machine is null ? [] : decide(machine), Metadata(context, saga.TenantId), context.CancellationToken);

    private static EventMetadata Metadata(ConsumeContext context, Guid tenantId) =>
        new(context.CorrelationId, context.MessageId, tenantId.ToString(), "service:provisioning");
}
