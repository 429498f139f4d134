using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Platform.Contracts;
using Platform.Contracts.Provisioning;
using Platform.EventSourcing;
using Platform.EventSourcing.Subscriptions;

namespace Platform.Provisioning.Snapshots;

/// <summary>
/// Snapshots as a table, kept in the appending transaction: reads, listings and fork operations come from here. Each row
/// holds the snapshot folded by <see cref="Snapshot.Apply"/>.
/// </summary>
public sealed class SnapshotCatalog(string schema) : IProjection
{
    public string Name => "snapshot-catalog";

    public static SchemaMigration Migration { get; } = new("snapshot-catalog", 1, """
        CREATE TABLE {schema}.snapshots (
            id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL,
            machine_id uuid NOT NULL,
            state text NOT NULL,
            fork_operation_id uuid,
            version bigint NOT NULL,
            snapshot jsonb NOT NULL
        );
        CREATE INDEX ON {schema}.snapshots (tenant_id, id);
        CREATE UNIQUE INDEX ON {schema}.snapshots (fork_operation_id) WHERE fork_operation_id IS NOT NULL;
        """);

    public async Task ApplyAsync(IReadOnlyList<StoredEvent> events, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        foreach (var stored in events.Where(e => e.StreamId.StartsWith("snapshot-", StringComparison.Ordinal)))
        {
            var before = stored.Data is SnapshotRequested ? null : await LoadAsync(transaction, stored.StreamId, cancellationToken);
            var after = Snapshot.Evolve(before, stored.Data);
            await using var command = new NpgsqlCommand($"""
                INSERT INTO {schema}.snapshots (id, tenant_id, machine_id, state, fork_operation_id, version, snapshot) VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (id) DO UPDATE SET state = excluded.state, version = excluded.version, snapshot = excluded.snapshot
                """, transaction.Connection, transaction);
            command.Parameters.AddWithValue(after.Id);
            command.Parameters.AddWithValue(after.TenantId);
            command.Parameters.AddWithValue(after.MachineId);
            command.Parameters.AddWithValue(after.State);
            command.Parameters.AddWithValue((object?)after.Fork?.OperationId ?? DBNull.Value);
            command.Parameters.AddWithValue(stored.StreamVersion);
            command.Parameters.AddWithValue(NpgsqlDbType.Jsonb, JsonSerializer.Serialize(after, PlatformJson.Options));
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    public async Task ResetAsync(NpgsqlTransaction transaction, CancellationToken cancellationToken) =>
        await transaction.ExecuteAsync($"TRUNCATE {schema}.snapshots", cancellationToken);

    private async Task<Snapshot?> LoadAsync(NpgsqlTransaction transaction, string streamId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"SELECT snapshot FROM {schema}.snapshots WHERE id = $1 FOR UPDATE", transaction.Connection, transaction);
        command.Parameters.AddWithValue(Guid.Parse(streamId["snapshot-".Length..]));
        var json = await command.ExecuteScalarAsync(cancellationToken) as string;
        return json is null ? null : JsonSerializer.Deserialize<Snapshot>(json, PlatformJson.Options);
    }
}
