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
        DecideAsync(context, saga, machine => machine.Awaits(saga.OperationId) && !machine.Steps.Contains(step)
            ? [new MachineStepCompleted(machine.Id, machine.TenantId, saga.OperationId, step, detail, time.GetUtcNow())]
            : []);

    /// <summary>The creation is done: the machine is running (and, if its process ended meanwhile, stopped or failed right after).</summary>
    public Task ReadyAsync(ConsumeContext context, MachineSagaState saga) =>
        DecideAsync(context, saga, machine =>
        {
            if (!machine.Awaits(saga.OperationId) || machine.State != MachineStates.Creating || saga.Launched is not { } launched)
            {
                return [];
            }

            var now = time.GetUtcNow();
            var running = new MachineRunning(machine.Id, machine.TenantId, saga.OperationId, launched.HostId, launched.Network,
                launched.Accelerator, launched.BootedFrom, launched.LaunchMilliseconds, now);
            return saga.ExitedEarly is { } exit ? [running, machine.EndedBy(exit, now)] : [running];
        });

    /// <summary>
    /// The machine's process ended while it runs: stopped (exit 0) or failed. The host's report reaches the saga and
    /// <see cref="HostReports"/> alike; whichever sees the machine running records it, once.
    /// </summary>
    public Task ExitedAsync(ConsumeContext context, MachineSagaState saga, MachineExited exit) =>
        DecideAsync(context, saga, machine =>
            machine.State != MachineStates.Running ? [] : [machine.EndedBy(exit, time.GetUtcNow())]);

    /// <summary>
    /// Everything the flow held is given back: a machine being destroyed is destroyed, a creation that failed ends
    /// failed. Either way it stops counting against its host, once.
    /// </summary>
    public Task FinishAsync(ConsumeContext context, MachineSagaState saga) =>
        streams.DecideAsync<Machine>(Machine.StreamOf(saga.CorrelationId), Machine.Evolve, loaded =>
        {
            if (loaded.State is not { } machine)
            {
                return [];
            }

            var now = time.GetUtcNow();
            object? end = machine switch
            {
                { State: MachineStates.Destroying, Pending: { } destroy } => new MachineDestroyed(machine.Id, machine.TenantId, destroy.Id, machine.HostId, now),
                { State: MachineStates.Creating, Pending: { } create } => new MachineFailed(machine.Id, machine.TenantId, create.Id,
                    $"creation failed at the {saga.FailedStep} step: {saga.FailureReason}", null, now, saga.FailedStep),
                _ => null,
            };
            if (end is null)
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
