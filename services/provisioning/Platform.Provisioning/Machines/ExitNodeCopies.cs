using MassTransit;
using Npgsql;
using NpgsqlTypes;
using Platform.Contracts.Networking;
using Platform.EventSourcing;

namespace Platform.Provisioning.Machines;

/// <summary>
/// Provisioning's copy of which exit nodes exist and who may use them (networking owns them), so that a machine naming
/// an unknown one is refused at once instead of failing at its tunnel step. A node registered a moment ago may not be
/// here yet: the copy follows networking's events.
/// </summary>
public sealed class ExitNodeCopies(NpgsqlDataSource dataSource, EventStore store) : IConsumer<ExitNodeRegistered>, IConsumer<ExitNodeRemoved>
{
    public static SchemaMigration Migration { get; } = new("exit-node-copies", 1, """
        CREATE TABLE {schema}.exit_nodes (
            id uuid PRIMARY KEY,
            tenant_id uuid
        );
        """);

    public async Task Consume(ConsumeContext<ExitNodeRegistered> context)
    {
        await using var command = dataSource.CreateCommand($"INSERT INTO {store.Schema}.exit_nodes (id, tenant_id) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING");
        command.Parameters.AddWithValue(context.Message.ExitNodeId);
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)context.Message.TenantId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        await command.ExecuteNonQueryAsync(context.CancellationToken);
    }

    public async Task Consume(ConsumeContext<ExitNodeRemoved> context)
    {
        await using var command = dataSource.CreateCommand($"DELETE FROM {store.Schema}.exit_nodes WHERE id = $1");
        command.Parameters.AddWithValue(context.Message.ExitNodeId);
        await command.ExecuteNonQueryAsync(context.CancellationToken);
    }

    /// <summary>Whether <paramref name="tenantId"/> may send machines through the node: its own, or a shared one.</summary>
    public async Task<bool> UsableAsync(Guid exitNodeId, Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT 1 FROM {store.Schema}.exit_nodes WHERE id = $1 AND (tenant_id IS NULL OR tenant_id = $2)");
        command.Parameters.AddWithValue(exitNodeId);
        command.Parameters.AddWithValue(tenantId);
        return await command.ExecuteScalarAsync(cancellationToken) is not null;
    }
}
