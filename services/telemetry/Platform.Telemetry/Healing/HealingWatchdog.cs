using MassTransit;
using Npgsql;
using Platform.Contracts.Provisioning;
using Platform.Contracts.Telemetry;
using Platform.EventSourcing;
using Platform.Messaging.Inbox;

namespace Platform.Telemetry.Healing;

/// <summary>
/// Watches machines' events and schedules their healing: a machine that fails is started again after a
/// backoff, up to its tenant's policy's maximum, then left failed. Each decision is an event (so it is in
/// the audit log) recorded with the watchdog's row in one transaction, once per event (the inbox).
/// </summary>
public sealed class HealingWatchdog(Inbox inbox, HealingStore healing, TimeProvider time) :
    IConsumer<MachineRequested>,
    IConsumer<MachineFailed>,
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
        inbox.HandleOnceAsync(context, nameof(HealingWatchdog), async session =>
        {
            var failed = context.Message;
            var state = await healing.FindAsync(session.Connection, session.Transaction, failed.MachineId, context.CancellationToken)
                ?? new HealingState(failed.MachineId, failed.TenantId, false, 0, null, null, null, false);
            var policy = await healing.PolicyAsync(failed.TenantId, context.CancellationToken);
            if (state.OptedOut || !policy.Enabled)
            {
                return;
            }

            var now = time.GetUtcNow();
            if (state.LastFailedAt is { } last && now - last > TimeSpan.FromSeconds(policy.ResetAfterSeconds))
            {
                state = state with { Attempts = 0, Abandoned = false };
            }

            var metadata = new EventMetadata(context.CorrelationId, context.MessageId, failed.TenantId.ToString(), "service:telemetry:healing");
            var stream = $"healing-{failed.MachineId}";
            if (state.Attempts >= policy.MaxAttempts)
            {
                if (!state.Abandoned)
                {
                    session.Append(stream, ExpectedVersion.Any, [new HealingAbandoned(failed.MachineId, failed.TenantId, state.Attempts, failed.Reason, now)], metadata);
                }

                await healing.SaveAsync(session.Connection, session.Transaction, state with { Abandoned = true, DueAt = null, LastReason = failed.Reason, LastFailedAt = now }, context.CancellationToken);
                return;
            }

            var attempt = state.Attempts + 1;
            var due = now + policy.BackoffBefore(attempt);
            session.Append(stream, ExpectedVersion.Any, [new HealingRequested(failed.MachineId, failed.TenantId, attempt, failed.Reason, due)], metadata);
            await healing.SaveAsync(session.Connection, session.Transaction,
                state with { Attempts = attempt, DueAt = due, LastReason = failed.Reason, LastFailedAt = now, Abandoned = false }, context.CancellationToken);
        });

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
            SELECT machine_id, tenant_id, attempts FROM {store.Schema}.healing_machines
            WHERE due_at <= $1 AND NOT abandoned ORDER BY due_at LIMIT 50 FOR UPDATE SKIP LOCKED
            """, session.Connection, session.Transaction);
        due.Parameters.AddWithValue(time.GetUtcNow());
        var machines = new List<(Guid Machine, Guid Tenant, int Attempt)>();
        await using (var reader = await due.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                machines.Add((reader.GetGuid(0), reader.GetGuid(1), reader.GetInt32(2)));
            }
        }

        if (machines.Count == 0)
        {
            return;
        }

        foreach (var (machine, tenant, attempt) in machines)
        {
            var operationId = Guid.CreateVersion7();
            // Sent before the commit: a crash in between sends it again, which provisioning ignores for a machine started already.
            await bus.Publish(new StartMachine(machine, tenant, operationId, "service:telemetry:healing"), cancellationToken);
            session.Append($"healing-{machine}", ExpectedVersion.Any, [new HealingAttempted(machine, tenant, attempt, operationId, time.GetUtcNow())],
                new EventMetadata(TenantId: tenant.ToString(), Actor: "service:telemetry:healing"));
            await using var done = new NpgsqlCommand($"UPDATE {store.Schema}.healing_machines SET due_at = NULL WHERE machine_id = $1", session.Connection, session.Transaction);
            done.Parameters.AddWithValue(machine);
            await done.ExecuteNonQueryAsync(cancellationToken);
        }

        await session.CommitAsync(cancellationToken);
    }
}
