using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Platform.Contracts;
using Platform.Contracts.Networking;
using Platform.EventSourcing;
using Platform.EventSourcing.Subscriptions;

namespace Platform.Networking.ExitNodes;

/// <summary>Exit nodes as a table, kept in the appending transaction; a removed node's row goes.</summary>
public sealed class ExitNodeCatalog(string schema) : IProjection
{
    public string Name => "exit-node-catalog";

    public static SchemaMigration Migration { get; } = new("exit-node-catalog", 1, """
        CREATE TABLE {schema}.exit_nodes (
            id uuid PRIMARY KEY,
            tenant_id uuid,
            name text NOT NULL,
            node jsonb NOT NULL
        );
        CREATE INDEX ON {schema}.exit_nodes (tenant_id, id);
        """);

    public async Task ApplyAsync(IReadOnlyList<StoredEvent> events, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        foreach (var stored in events)
        {
            await using var command = stored.Data switch
            {
                ExitNodeRegistered node => transaction.Command($"INSERT INTO {schema}.exit_nodes (id, tenant_id, name, node) VALUES ($1, $2, $3, $4)",
                    node.ExitNodeId, new NpgsqlParameter { Value = (object?)node.TenantId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid }, node.Name,
                    new NpgsqlParameter { Value = JsonSerializer.Serialize(node, PlatformJson.Options), NpgsqlDbType = NpgsqlDbType.Jsonb }),
                ExitNodeRemoved removed => transaction.Command($"DELETE FROM {schema}.exit_nodes WHERE id = $1", removed.ExitNodeId),
                ExitNodeExitAddressChanged changed => transaction.Command($"UPDATE {schema}.exit_nodes SET node = jsonb_set(node, '{{exitAddress}}', to_jsonb($2::text)) WHERE id = $1",
                    changed.ExitNodeId, changed.Current),
                _ => null,
            };
            if (command is not null)
            {
                await command.ExecuteNonQueryAsync(cancellationToken);
            }
        }
    }

    public async Task ResetAsync(NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        await transaction.ExecuteAsync($"TRUNCATE {schema}.exit_nodes", cancellationToken);
    }
}
