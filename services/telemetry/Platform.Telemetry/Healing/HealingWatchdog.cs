using MassTransit;
using Npgsql;
using Platform.Contracts.Networking;
using Platform.Contracts.Provisioning;
using Platform.Contracts.Telemetry;
using Platform.EventSourcing;
using Platform.Messaging.Inbox;

namespace Platform.Telemetry.Healing;

/// <summary>
/// Watches machines' events and schedules their healing: a machine that fails is started again (one that turns
/// unhealthy is restarted, one whose tunnel went down has it re-attached) after a backoff, up to its tenant's policy's
/// maximum, then left as it is; with the policy's consent, the machines behind an exit node whose public address changed
/// are recreated. Each decision is an event (so it is in the audit log) recorded with the watchdog's row in one
/// transaction, once per event (the inbox).
/// </summary>
public sealed class HealingWatchdog(Inbox inbox, HealingStore healing, TimeProvider time) :
    IConsumer<MachineRequested>,
    IConsumer<MachineFailed>,
    IConsumer<MachineHealthChanged>,
    IConsumer<TunnelDown>,
    IConsumer<TunnelUp>,
    IConsumer<TunnelReattachFailed>,
    IConsumer<ExitNodeExitAddressChanged>,
    IConsumer<MachineDestroyRequested>
{
    public const string OptOutLabel = "healing";

    public Task Consume(ConsumeContext<MachineRequested> context) =>
        inbox.HandleOnceAsync(context, nameof(HealingWatchdog), async session =>
        {
            var machine = context.Message;
            var optedOut = machine.Labels.TryGetValue(OptOutLabel, out var value) && value == "off";
            await healing.SaveAsync(session.Connection, session.Transaction,
                new HealingState(machine.MachineId, machine.TenantId, optedOut, 0, null, null, null, false, ExitNodeId: machine.ExitNodeId), context.CancellationToken);
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
            else if (changed.State == HealthStates.Healthy)
            {
                await CancelDueAsync(session, context, changed.MachineId, HealingActions.Restart);
            }
        });

    /// <summary>A tunnel that is down is made again with a fresh key, under the same policy and count as restarts.</summary>
    public Task Consume(ConsumeContext<TunnelDown> context) =>
        inbox.HandleOnceAsync(context, nameof(HealingWatchdog), session =>
            ScheduleAsync(session, context, context.Message.MachineId, null, $"tunnel down: {context.Message.Reason}", HealingActions.ReattachTunnel));

    /// <summary>A re-attach that failed (or went unanswered) is tried again, counted like any other attempt.</summary>
    public Task Consume(ConsumeContext<TunnelReattachFailed> context) =>
        inbox.HandleOnceAsync(context, nameof(HealingWatchdog), session =>
            ScheduleAsync(session, context, context.Message.MachineId, null, $"tunnel re-attach failed: {context.Message.Reason}", HealingActions.ReattachTunnel));

    /// <summary>A tunnel that came back before its re-attach was due is left alone.</summary>
    public Task Consume(ConsumeContext<TunnelUp> context) =>
        inbox.HandleOnceAsync(context, nameof(HealingWatchdog), session => CancelDueAsync(session, context, context.Message.MachineId, HealingActions.ReattachTunnel));

    /// <summary>Every machine behind the node is recreated, when its tenant's policy asks for it.</summary>
    public Task Consume(ConsumeContext<ExitNodeExitAddressChanged> context) =>
        inbox.HandleOnceAsync(context, nameof(HealingWatchdog), async session =>
        {
            var changed = context.Message;
            foreach (var machineId in await healing.MachinesBehindAsync(session.Connection, session.Transaction, changed.ExitNodeId, context.CancellationToken))
            {
                await ScheduleAsync(session, context, machineId, null,
                    $"the public address of exit node {changed.ExitNodeId} changed from {changed.Previous ?? "unknown"} to {changed.Current}", HealingActions.Recreate);
            }
        });

    private async Task CancelDueAsync(EventStoreSession session, ConsumeContext context, Guid machineId, string action)
    {
        if (await healing.FindAsync(session.Connection, session.Transaction, machineId, context.CancellationToken) is { DueAt: not null } due && due.Action == action)
        {
            await healing.SaveAsync(session.Connection, session.Transaction, due with { DueAt = null }, context.CancellationToken);
        }
    }

    /// <summary>
    /// Schedules the next attempt, or gives up after the policy's maximum. <paramref name="tenantOrNull"/> null: only a machine the
    /// watchdog watches already.
    /// </summary>
    private async Task ScheduleAsync(EventStoreSession session, ConsumeContext context, Guid machineId, Guid? tenantOrNull, string reason, string action)
    {
        var state = await healing.FindAsync(session.Connection, session.Transaction, machineId, context.CancellationToken);
        if (state is null && tenantOrNull is null)
        {
            // A machine the watchdog does not watch (destroyed since, or created before it ran): a late tunnel or exit event about it changes nothing.
            return;
        }

        state ??= new HealingState(machineId, tenantOrNull!.Value, false, 0, null, null, null, false);
        var tenantId = state.TenantId;
        var policy = await healing.PolicyAsync(tenantId, context.CancellationToken);
        if (state.OptedOut || !policy.Enabled || (action == HealingActions.Recreate && !policy.RecreateOnExitAddressChange))
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
        session.Append(stream, ExpectedVersion.Any, [new HealingRequested(machineId, tenantId, attempt, reason, due, action)], metadata);
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
    private const string Actor = "service:telemetry:healing";
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
            object command = action switch
            {
                HealingActions.Restart => new RestartMachine(machine, tenant, operationId, Actor),
                HealingActions.ReattachTunnel => new ReattachTunnel(machine, tenant, operationId, Actor),
                HealingActions.Recreate => new RecreateMachine(machine, tenant, operationId, Actor),
                _ => new StartMachine(machine, tenant, operationId, Actor),
            };
            await bus.Publish(command, command.GetType(), cancellationToken);
            session.Append($"healing-{machine}", ExpectedVersion.Any, [new HealingAttempted(machine, tenant, attempt, operationId, time.GetUtcNow(), action)],
                new EventMetadata(TenantId: tenant.ToString(), Actor: "service:telemetry:healing"));
            await using var done = new NpgsqlCommand($"UPDATE {store.Schema}.healing_machines SET due_at = NULL WHERE machine_id = $1", session.Connection, session.Transaction);
            done.Parameters.AddWithValue(machine);
            await done.ExecuteNonQueryAsync(cancellationToken);
        }

        await session.CommitAsync(cancellationToken);
    }
}
