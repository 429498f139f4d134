using MassTransit;
using Npgsql;
using Platform.Contracts.Provisioning;
using Platform.Contracts.Telemetry;
using Platform.EventSourcing;
using Platform.Messaging.Inbox;

namespace Platform.Telemetry.Healing;

/// <summary>
/// Watches machines' events and schedules their healing: a machine that fails is started again (one that turns
/// unhealthy is restarted) after a backoff, up to its tenant's policy's maximum, then left as it is. Each decision is an event (so it is in
/// the audit log) recorded with the watchdog's row in one transaction, once per event (the inbox).
/// </summary>
public sealed class HealingWatchdog(Inbox inbox, HealingStore healing, TimeProvider time) :
    IConsumer<MachineRequested>,
    IConsumer<MachineFailed>,
    IConsumer<MachineHealthChanged>,
    IConsumer<MachineDestroyRequested>
{
    public const string OptOutLabel = "healing";

    public Task Consume(ConsumeContext<MachineRequested> context) =>
        inbox.HandleOnceAsync(context, nameof(HealingWatchdog), async session =>
        {
            var machine = context.Message;
            var optedOut = machine.Labels.TryGetValue(OptOutLabel, out var value) && value == "off";
            await healing.SaveAsync(session.Connection, session.Transaction,
                new HealingState(machine.MachineId, machine.TenantId, optedOut, 0, null, null, null, false), context.CancellationToken);
        });

    public Task Consume(ConsumeContext<MachineFailed> context) =>
        inbox.HandleOnceAsync(context, nameof(HealingWatchdog), session =>
            ScheduleAsync(session, context, context.Message.MachineId, context.Message.TenantId, context.Message.Reason, HealingActions.Start));

    /// <summary>
    /// An unhealthy machine is restarted as a failed one is started, under the same policy and count; one that is healthy
    /// again before its restart is due is left alone.
    /// </summary>
    public Task Consume(ConsumeContext<MachineHealthChanged> context) =>
        inbox.HandleOnceAsync(context, nameof(HealingWatchdog), async session =>
        {
            var changed = context.Message;
            if (changed.State == HealthStates.Unhealthy)
            {
                await ScheduleAsync(session, context, changed.MachineId, changed.TenantId, $"unhealthy: {changed.Reason}", HealingActions.Restart);
            }
            else if (changed.State == HealthStates.Healthy
                && await healing.FindAsync(session.Connection, session.Transaction, changed.MachineId, context.CancellationToken) is { Action: HealingActions.Restart, DueAt: not null } due)
            {
                await healing.SaveAsync(session.Connection, session.Transaction, due with { DueAt = null }, context.CancellationToken);
            }
        });

    private async Task ScheduleAsync(EventStoreSession session, ConsumeContext context, Guid machineId, Guid tenantId, string reason, string action)
    {
        var state = await healing.FindAsync(session.Connection, session.Transaction, machineId, context.CancellationToken)
            ?? new HealingState(machineId, tenantId, false, 0, null, null, null, false);
        var policy = await healing.PolicyAsync(tenantId, context.CancellationToken);
        if (state.OptedOut || !policy.Enabled)
        {
            return;
        }

        var now = time.GetUtcNow();
        if (state.LastFailedAt is { } last && now - last > TimeSpan.FromSeconds(policy.ResetAfterSeconds))
        {
            state = state with { Attempts = 0, Abandoned = false };
        }

        var metadata = new EventMetadata(context.CorrelationId, context.MessageId, tenantId.ToString(), "service:telemetry:healing");
        var stream = $"healing-{machineId}";
        if (state.Attempts >= policy.MaxAttempts)
        {
            if (!state.Abandoned)
            {
                session.Append(stream, ExpectedVersion.Any, [new HealingAbandoned(machineId, tenantId, state.Attempts, reason, now)], metadata);
            }

            await healing.SaveAsync(session.Connection, session.Transaction, state with { Abandoned = true, DueAt = null, LastReason = reason, LastFailedAt = now }, context.CancellationToken);
            return;
        }

        var attempt = state.Attempts + 1;
        var due = now + policy.BackoffBefore(attempt);
        session.Append(stream, ExpectedVersion.Any, [new HealingRequested(machineId, tenantId, attempt, reason, due)], metadata);
        await healing.SaveAsync(session.Connection, session.Transaction,
            state with { Attempts = attempt, DueAt = due, LastReason = reason, LastFailedAt = now, Abandoned = false, Action = action }, context.CancellationToken);
    }

    public Task Consume(ConsumeContext<MachineDestroyRequested> context) =>
        inbox.HandleOnceAsync(context, nameof(HealingWatchdog), session =>
            healing.ForgetAsync(session.Connection, session.Transaction, context.Message.MachineId, context.CancellationToken));
}

/// <summary>
/// Starts the machines whose healing is due: the schedule is a column, so it survives restarts, and rows
/// are taken with SKIP LOCKED, so several telemetry instances never start one machine twice.
/// </summary>
public sealed class HealingSweeper(EventStore store, IBus bus, TimeProvider time, ILogger<HealingSweeper> logger) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(250);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await SweepAsync(stoppingToken);
            }
            catch (Exception exception) when (exception is NpgsqlException or TimeoutException or RequestTimeoutException)
            {
                logger.LogWarning(exception, "Healing sweep failed; retrying");
            }

            await Task.Delay(Interval, stoppingToken);
        }
    }

    private async Task SweepAsync(CancellationToken cancellationToken)
    {
        await using var session = await store.BeginSessionAsync(cancellationToken);
        await using var due = new NpgsqlCommand($"""
            SELECT machine_id, tenant_id, attempts, action FROM {store.Schema}.healing_machines
            WHERE due_at <= $1 AND NOT abandoned ORDER BY due_at LIMIT 50 FOR UPDATE SKIP LOCKED
            """, session.Connection, session.Transaction);
        due.Parameters.AddWithValue(time.GetUtcNow());
        var machines = new List<(Guid Machine, Guid Tenant, int Attempt, string Action)>();
        await using (var reader = await due.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                machines.Add((reader.GetGuid(0), reader.GetGuid(1), reader.GetInt32(2), reader.GetString(3)));
            }
        }

        if (machines.Count == 0)
        {
            return;
        }

        foreach (var (machine, tenant, attempt, action) in machines)
        {
            var operationId = Guid.CreateVersion7();
            // Sent before the commit: a crash in between sends it again, which provisioning ignores for a machine started already.
            object command = action == HealingActions.Restart
                ? new RestartMachine(machine, tenant, operationId, "service:telemetry:healing")
                : new StartMachine(machine, tenant, operationId, "service:telemetry:healing");
            await bus.Publish(command, command.GetType(), cancellationToken);
            session.Append($"healing-{machine}", ExpectedVersion.Any, [new HealingAttempted(machine, tenant, attempt, operationId, time.GetUtcNow())],
                new EventMetadata(TenantId: tenant.ToString(), Actor: "service:telemetry:healing"));
            await using var done = new NpgsqlCommand($"UPDATE {store.Schema}.healing_machines SET due_at = NULL WHERE machine_id = $1", session.Connection, session.Transaction);
            done.Parameters.AddWithValue(machine);
            await done.ExecuteNonQueryAsync(cancellationToken);
        }

        await session.CommitAsync(cancellationToken);
    }
}
