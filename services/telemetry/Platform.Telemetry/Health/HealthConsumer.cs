using MassTransit;
using Platform.Contracts.Networking;
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
public sealed class HealthConsumer(EventStore store, HealthStore health, MachineLedger ledger) :
    IConsumer<MachineHealthReported>, IConsumer<TunnelDown>, IConsumer<TunnelUp>
{
    public const string Actor = "service:telemetry:health";

    /// <summary>
    /// The check networking's tunnel verdicts are recorded as. A tunnel that is down degrades its machine but never makes it
    /// unhealthy: restarting the machine would not mend it; the watchdog re-attaches the tunnel instead.
    /// </summary>
    public const string TunnelCheck = "tunnel";

    public Task Consume(ConsumeContext<MachineHealthReported> context)
    {
        var report = context.Message;
        return RecordAsync(context, report.MachineId, report.TenantId, new CheckResult(report.Check, report.Healthy, report.ConsecutiveFailures, report.Detail, report.At));
    }

    public Task Consume(ConsumeContext<TunnelDown> context)
    {
        var down = context.Message;
        return RecordAsync(context, down.MachineId, down.TenantId, new CheckResult(TunnelCheck, false, 1, down.Reason, down.At));
    }

    public Task Consume(ConsumeContext<TunnelUp> context)
    {
        var up = context.Message;
        return RecordAsync(context, up.MachineId, up.TenantId, new CheckResult(TunnelCheck, true, 0, $"handshake with the exit node at {up.LatestHandshakeAt:O}", up.At));
    }

    private async Task RecordAsync(ConsumeContext context, Guid machineId, Guid tenantId, CheckResult result)
    {
        var cancellationToken = context.CancellationToken;
        await using var session = await store.BeginSessionAsync(cancellationToken);
        var (state, _) = await health.LockAsync(session, machineId, tenantId, result.At, cancellationToken);
        var machine = await ledger.FindAsync(session.Connection, session.Transaction, machineId, cancellationToken);
        if (machine is not null && (result.At < machine.StateSince || machine.State is "stopped" or "failed" or "destroyed"))
        {
            return;
        }

        var checks = await health.RecordAsync(session, machineId, result, cancellationToken);
        var (next, reason) = Decide(checks, machine?.Probe?.FailuresToUnhealthy ?? MachineProbe.DefaultUnhealthyAfter);
        if (next != state)
        {
            await health.SetStateAsync(session, machineId, next, reason, result.At, cancellationToken);
            session.Append($"health-{machineId}", ExpectedVersion.Any, [new MachineHealthChanged(machineId, tenantId, next, reason, result.At)],
                new EventMetadata(context.CorrelationId, context.MessageId, tenantId.ToString(), Actor));
        }

        await session.CommitAsync(cancellationToken);
    }

    /// <summary>The state the checks add up to, and why, in words a user can act on.</summary>
    public static (string State, string Reason) Decide(IReadOnlyList<CheckResult> checks, int unhealthyAfter)
    {
        if (checks.Where(c => !c.Healthy && c.ConsecutiveFailures >= unhealthyAfter && c.Name != TunnelCheck)
                .OrderByDescending(c => c.ConsecutiveFailures).FirstOrDefault() is { } broken)
        {
            return (HealthStates.Unhealthy, $"{broken.Name} failed {broken.ConsecutiveFailures} times in a row: {broken.Detail}");
        }

        if (checks.FirstOrDefault(c => !c.Healthy) is { } failing)
        {
            return failing.Name == TunnelCheck
                ? (HealthStates.Degraded, $"{TunnelCheck} is down: {failing.Detail}")
                : (HealthStates.Degraded, $"{failing.Name} failed {failing.ConsecutiveFailures} of {unhealthyAfter} times in a row: {failing.Detail}");
        }

        return (HealthStates.Healthy, $"every check passes: {string.Join(", ", checks.Select(c => c.Name))}");
    }
}
