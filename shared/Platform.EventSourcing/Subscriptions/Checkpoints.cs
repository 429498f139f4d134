using Npgsql;

namespace Platform.EventSourcing.Subscriptions;

/// <summary>Durable positions of subscriptions and projections, in the store's schema.</summary>
internal static class Checkpoints
{
    /// <summary>Reads the checkpoint and locks its row until the transaction ends (creating it at 0 when new).</summary>
    public static async Task<long> LockAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string schema, string name, CancellationToken cancellationToken)
    {
        await using var batch = new NpgsqlBatch(connection, transaction)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand($"INSERT INTO {schema}.checkpoints (name, position, updated_at) VALUES ($1, 0, now()) ON CONFLICT (name) DO NOTHING")
                {
                    Parameters = { new() { Value = name } },
                },
                new NpgsqlBatchCommand($"SELECT position FROM {schema}.checkpoints WHERE name = $1 FOR UPDATE")
                {
                    Parameters = { new() { Value = name } },
                },
            },
        };
        return (long)(await batch.ExecuteScalarAsync(cancellationToken))!;
    }

    public static async Task<long> ReadAsync(NpgsqlConnection connection, string schema, string name, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"SELECT position FROM {schema}.checkpoints WHERE name = $1", connection)
        {
            Parameters = { new() { Value = name } },
        };
        return await command.ExecuteScalarAsync(cancellationToken) is long position ? position : 0;
    }

    public static async Task SaveAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string schema, string name, long position, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            $"""
            INSERT INTO {schema}.checkpoints (name, position, updated_at) VALUES ($1, $2, now())
            ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = EXCLUDED.updated_at
            """,
            connection,
            transaction)
        {
            Parameters = { new() { Value = name }, new() { Value = position } },
        };
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
