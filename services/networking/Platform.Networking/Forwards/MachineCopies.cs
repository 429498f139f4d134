using MassTransit;
using Npgsql;
using Platform.Contracts.Provisioning;
using Platform.EventSourcing;
using Platform.Networking.Addressing;
using Platform.Messaging;

namespace Platform.Networking.Forwards;

public static class MachineCopyStates
{
    public const string Requested = "requested";
    public const string Running = "running";
    public const string Stopped = "stopped";
    public const string Destroyed = "destroyed";
}

/// <summary>What networking knows of a machine (provisioning owns it): whose it is, its driver, and where it runs at which address.</summary>
public sealed record MachineCopy(Guid MachineId, Guid TenantId, string? Driver, string State, Guid? HostId, string? Address, string? Gateway, int? PrefixLength)
{
    /// <summary>Drivers whose machines sit in their tenant's segment on a host: the only ones a host port can reach.</summary>
    public static IReadOnlySet<string> SegmentDrivers { get; } = new HashSet<string> { "sandbox", "microvm" };
}

/// <summary>
/// Networking's copy of provisioning's machines, from its integration events, so that a forward is asked for only on
/// a running machine of the caller's tenant and goes where it runs; and, when a machine is destroyed, its forwards go
/// with it. The copy follows the events: a machine that started a moment ago may not be running here yet. Events of
/// one machine may arrive out of order (redelivery): each state carries its time and an older one never wins, and
/// destroyed is final.
/// </summary>
public sealed class MachineCopies(NpgsqlDataSource dataSource, EventStore store, PortForwarding forwarding) :
    IConsumer<MachineRequested>, IConsumer<MachineRunning>, IConsumer<MachineStopped>, IConsumer<MachineFailed>, IConsumer<MachineDestroyed>
{
    public static SchemaMigration Migration { get; } = new("machine-copies", 1, """
        CREATE TABLE {schema}.machine_copies (
            machine_id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL,
            driver text,
            state text NOT NULL,
            host_id uuid,
            address text,
            gateway text,
            prefix_length integer,
            changed_at timestamptz NOT NULL
        );
        """);

    public async Task Consume(ConsumeContext<MachineRequested> context)
    {
        var e = context.Message;
        await ExecuteAsync($"""
            INSERT INTO {store.Schema}.machine_copies (machine_id, tenant_id, driver, state, changed_at) VALUES ($1, $2, $3, '{MachineCopyStates.Requested}', $4)
            ON CONFLICT (machine_id) DO UPDATE SET driver = EXCLUDED.driver
            """, context.CancellationToken, e.MachineId, e.TenantId, e.Driver, e.RequestedAt);
    }

    public async Task Consume(ConsumeContext<MachineRunning> context)
    {
        var e = context.Message;
        await ExecuteAsync($"""
            INSERT INTO {store.Schema}.machine_copies AS m (machine_id, tenant_id, state, host_id, address, gateway, prefix_length, changed_at)
            VALUES ($1, $2, '{MachineCopyStates.Running}', $3, $4, $5, $6, $7)
            ON CONFLICT (machine_id) DO UPDATE SET host_id = EXCLUDED.host_id, address = EXCLUDED.address, gateway = EXCLUDED.gateway,
                prefix_length = EXCLUDED.prefix_length, state = EXCLUDED.state, changed_at = EXCLUDED.changed_at
            WHERE m.state <> '{MachineCopyStates.Destroyed}' AND m.changed_at < EXCLUDED.changed_at
            """, context.CancellationToken, e.MachineId, e.TenantId, e.HostId, (object?)e.Network?.Address ?? DBNull.Value,
            (object?)e.Network?.Gateway ?? DBNull.Value, (object?)e.Network?.PrefixLength ?? DBNull.Value, e.RunningAt);
    }

    public Task Consume(ConsumeContext<MachineStopped> context) => StoppedAsync(context.Message.MachineId, context.Message.StoppedAt, context.CancellationToken);

    public Task Consume(ConsumeContext<MachineFailed> context) => StoppedAsync(context.Message.MachineId, context.Message.FailedAt, context.CancellationToken);

    public async Task Consume(ConsumeContext<MachineDestroyed> context)
    {
        var e = context.Message;
        await ExecuteAsync($"""
            INSERT INTO {store.Schema}.machine_copies (machine_id, tenant_id, state, changed_at) VALUES ($1, $2, '{MachineCopyStates.Destroyed}', $3)
            ON CONFLICT (machine_id) DO UPDATE SET state = EXCLUDED.state, changed_at = EXCLUDED.changed_at
            """, context.CancellationToken, e.MachineId, e.TenantId, e.DestroyedAt);
        // The host agent closed them when it tore the machine down; the records go now.
        await forwarding.RemoveAllOfAsync(e.MachineId, e.TenantId, "its machine was destroyed", context, AddressingMetadata.Of(context, e.TenantId), context.CancellationToken);
    }

    /// <summary>The machine as this copy knows it, if it is <paramref name="tenantId"/>'s (or any tenant's, for null).</summary>
    public async Task<MachineCopy?> FindAsync(Guid machineId, Guid? tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            $"SELECT machine_id, tenant_id, driver, state, host_id, address, gateway, prefix_length FROM {store.Schema}.machine_copies WHERE machine_id = $1 AND ($2 OR tenant_id = $3)");
        command.Parameters.AddWithValue(machineId);
        command.Parameters.AddWithValue(tenantId is null);
        command.Parameters.AddWithValue(tenantId ?? Guid.Empty);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken)
            ? new MachineCopy(reader.GetGuid(0), reader.GetGuid(1), reader.IsDBNull(2) ? null : reader.GetString(2), reader.GetString(3),
                reader.IsDBNull(4) ? null : reader.GetGuid(4), reader.IsDBNull(5) ? null : reader.GetString(5), reader.IsDBNull(6) ? null : reader.GetString(6),
                reader.IsDBNull(7) ? null : reader.GetInt32(7))
            : null;
    }

    private Task StoppedAsync(Guid machineId, DateTimeOffset at, CancellationToken cancellationToken) => ExecuteAsync($"""
        UPDATE {store.Schema}.machine_copies SET state = '{MachineCopyStates.Stopped}', changed_at = $2
        WHERE machine_id = $1 AND state <> '{MachineCopyStates.Destroyed}' AND changed_at <= $2
        """, cancellationToken, machineId, at);

    private async Task ExecuteAsync(string sql, CancellationToken cancellationToken, params object?[] values)
    {
        await using var command = dataSource.CreateCommand(sql);
        foreach (var value in values)
        {
            command.Parameters.AddWithValue(value ?? DBNull.Value);
        }

        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}

/// <summary>One machine's events one at a time per instance, in order.</summary>
public sealed class MachineCopiesDefinition : ConsumerDefinition<MachineCopies>
{
    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<MachineCopies> consumer, IRegistrationContext context)
    {
        var partitioner = endpoint.CreatePartitioner(16);
        consumer.Message<MachineRequested>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<MachineRunning>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<MachineStopped>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<MachineFailed>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<MachineDestroyed>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
    }
}
