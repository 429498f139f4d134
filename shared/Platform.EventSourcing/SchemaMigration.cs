using System.Text.RegularExpressions;
using Npgsql;

namespace Platform.EventSourcing;

/// <summary>One numbered DDL step of a component (event store, inbox, saga table, a read model) in a service's schema.</summary>
/// <param name="Sql">DDL in which <c>{schema}</c> stands for the service's schema.</param>
public sealed record SchemaMigration(string Component, int Version, string Sql);

/// <summary>Creates and migrates a service's schema at start; safe when several instances start at once.</summary>
public static partial class SchemaMigrator
{
    public static void EnsureValidSchemaName(string schema)
    {
        if (!SchemaName().IsMatch(schema))
        {
            throw new ArgumentException($"'{schema}' is not a valid schema name: use lower-case letters, digits and '_' (at most 63, starting with a letter or '_').", nameof(schema));
        }
    }

    public static async Task ApplyAsync(NpgsqlDataSource dataSource, string schema, IEnumerable<SchemaMigration> migrations, CancellationToken cancellationToken = default)
    {
        EnsureValidSchemaName(schema);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);

        await using (var setup = new NpgsqlBatch(connection, transaction))
        {
            setup.BatchCommands.Add(new NpgsqlBatchCommand("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))") { Parameters = { new() { Value = "platform-migrate:" + schema } } });
            setup.BatchCommands.Add(new NpgsqlBatchCommand($"CREATE SCHEMA IF NOT EXISTS {schema}"));
            setup.BatchCommands.Add(new NpgsqlBatchCommand(
                $"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (component text NOT NULL, version int NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (component, version))"));
            await setup.ExecuteNonQueryAsync(cancellationToken);
        }

        var applied = new HashSet<(string, int)>();
        await using (var read = new NpgsqlCommand($"SELECT component, version FROM {schema}.schema_migrations", connection, transaction))
        await using (var reader = await read.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                applied.Add((reader.GetString(0), reader.GetInt32(1)));
            }
        }

        foreach (var migration in migrations.OrderBy(m => m.Component, StringComparer.Ordinal).ThenBy(m => m.Version))
        {
            if (applied.Contains((migration.Component, migration.Version)))
            {
                continue;
            }

            await using var step = new NpgsqlCommand(migration.Sql.Replace("{schema}", schema, StringComparison.Ordinal), connection, transaction);
            await step.ExecuteNonQueryAsync(cancellationToken);
            await using var record = new NpgsqlCommand($"INSERT INTO {schema}.schema_migrations (component, version) VALUES ($1, $2)", connection, transaction)
            {
                Parameters = { new() { Value = migration.Component }, new() { Value = migration.Version } },
            };
            await record.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$")]
    private static partial Regex SchemaName();
}
