using Npgsql;
using Platform.EventSourcing;

namespace Platform.Messaging.Sagas;

/// <summary>
/// Where a service keeps its saga instances: one table in its schema, a row per instance, JSON state and a version.
/// Every write is one statement conditional on the version read, so a message's saga work needs no transaction and
/// holds no connection while its activities run (they append to the event store, which may wait its turn).
/// </summary>
public sealed class SagaStore(NpgsqlDataSource dataSource, string schema)
{
    public static IReadOnlyList<SchemaMigration> Migrations { get; } =
    [
        new("sagas", 1, """
            CREATE TABLE {schema}.sagas (
                saga_type text NOT NULL,
                correlation_id uuid NOT NULL,
                version int NOT NULL,
                state jsonb NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (saga_type, correlation_id)
            );
            """),
    ];

    public string Schema { get; } = schema;

    /// <summary>A statement that takes a pooled connection when it runs and gives it back when it is done.</summary>
    internal NpgsqlCommand Command(string sql) => dataSource.CreateCommand(sql);
}
