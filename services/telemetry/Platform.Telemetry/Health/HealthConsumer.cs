using MassTransit;
using Platform.Contracts.Provisioning;
using Platform.Contracts.Telemetry;
using Platform.EventSourcing;
using Platform.Telemetry.Machines;

namespace Platform.Telemetry.Health;

/// <summary>
/// Folds the agents' check results into each machine's health: <c>unhealthy</c> once a check failed the machine's
/// <c>unhealthyAfter</c> times in a row, <c>degraded</c> while one fails fewer times, <c>healthy</c> when all pass. A
/// change is recorded as <see cref="MachineHealthChanged"/> with the state, in one transaction, so it reaches the audit
/// log, webhooks and the healing watchdog. A result from before the machine's current run changes nothing.
/// </summary>
public sealed class HealthConsumer(EventStore store, HealthStore health, MachineLedger ledger) : IConsumer<MachineHealthReported>
{
    public const string Actor = "service:telemetry:health";

    public async Task Consume(ConsumeContext<MachineHealthReported> context)
    {
        var report = context.Message;
        var cancellationToken = context.CancellationToken;
        await using var session = await store.BeginSessionAsync(cancellationToken);
        var (state, _) = await health.LockAsync(session, report.MachineId, report.TenantId, report.At, cancellationToken);
        var machine = await ledger.FindAsync(session.Connection, session.Transaction, report.MachineId, cancellationToken);
        if (machine is not null && (report.At < machine.StateSince || machine.State is "stopped" or "failed" or "destroyed"))
        {
            return;
        }

        var checks = await health.RecordAsync(session, report.MachineId,
            new CheckResult(report.Check, report.Healthy, report.ConsecutiveFailures, report.Detail, report.At), cancellationToken);
        var (next, reason) = Decide(checks, machine?.Probe?.FailuresToUnhealthy ?? MachineProbe.DefaultUnhealthyAfter);
        if (next != state)
        {
            await health.SetStateAsync(session, report.MachineId, next, reason, report.At, cancellationToken);
            session.Append($"health-{report.MachineId}", ExpectedVersion.Any, [new MachineHealthChanged(report.MachineId, report.TenantId, next, reason, report.At)],
                new EventMetadata(context.CorrelationId, context.MessageId, report.TenantId.ToString(), Actor));
        }

        await session.CommitAsync(cancellationToken);
    }

    /// <summary>The state the checks add up to, and why, in words a user can act on.</summary>
    public static (string State, string Reason) Decide(IReadOnlyList<CheckResult> checks, int unhealthyAfter)
    {
        if (checks.Where(c => !c.Healthy && c.ConsecutiveFailures >= unhealthyAfter).OrderByDescending(c => c.ConsecutiveFailures).FirstOrDefault() is { } broken)
        {
            return (HealthStates.Unhealthy, $"{broken.Name} failed {broken.ConsecutiveFailures} times in a row: {broken.Detail}");
        }

        if (checks.FirstOrDefault(c => !c.Healthy) is { } failing)
        {
            return (HealthStates.Degraded, $"{failing.Name} failed {failing.ConsecutiveFailures} of {unhealthyAfter} times in a row: {failing.Detail}");
        }

        return (HealthStates.Healthy, $"every check passes: {string.Join(", ", checks.Select(c => c.Name))}");
    }
}
