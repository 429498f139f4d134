using Npgsql;
using Platform.EventSourcing.Subscriptions;
using Platform.EventSourcing.Tests.Events;

namespace Platform.EventSourcing.Tests;

/// <summary>A read model in PostgreSQL: each counter stream's total.</summary>
internal sealed class CounterTotals(string schema, bool failing = false) : IProjection
{
    public string Name => "counter-totals";

    public static SchemaMigration Migration(string schema) =>
        new("counter-totals", 1, "CREATE TABLE {schema}.counter_totals (stream_id text PRIMARY KEY, total int NOT NULL)");

    public async Task ApplyAsync(IReadOnlyList<StoredEvent> events, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        if (failing)
        {
            throw new InvalidOperationException("projection failed on purpose");
        }

        foreach (var @event in events)
        {
            if (@event.Data is CounterIncremented incremented)
            {
                await using var command = new NpgsqlCommand(
                    $"INSERT INTO {schema}.counter_totals VALUES ($1, $2) ON CONFLICT (stream_id) DO UPDATE SET total = counter_totals.total + EXCLUDED.total",
                    transaction.Connection,
                    transaction)
                {
                    Parameters = { new() { Value = @event.StreamId }, new() { Value = incremented.By } },
                };
                await command.ExecuteNonQueryAsync(cancellationToken);
            }
        }
    }

    public async Task ResetAsync(NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"DELETE FROM {schema}.counter_totals", transaction.Connection, transaction);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public static async Task<Dictionary<string, int>> ReadAsync(NpgsqlDataSource dataSource, string schema)
    {
        var totals = new Dictionary<string, int>();
        await using var command = dataSource.CreateCommand($"SELECT stream_id, total FROM {schema}.counter_totals");
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            totals[reader.GetString(0)] = reader.GetInt32(1);
        }

        return totals;
    }
}
