using Npgsql;
using Platform.EventSourcing;

namespace Platform.Messaging.Sagas;

/// <summary>Where a service keeps its saga instances: one table in its schema, a row per instance, JSON state and a version.</summary>
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

    internal async Task<SagaTransaction> BeginAsync(CancellationToken cancellationToken)
    {
        var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            return new SagaTransaction(Schema, connection, await connection.BeginTransactionAsync(cancellationToken));
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }
}

/// <summary>The transaction one message's saga work runs in.</summary>
public sealed class SagaTransaction(string schema, NpgsqlConnection connection, NpgsqlTransaction transaction) : IAsyncDisposable
{
    public string Schema { get; } = schema;

    public NpgsqlConnection Connection { get; } = connection;

    public NpgsqlTransaction Transaction { get; } = transaction;

    public async ValueTask DisposeAsync()
    {
        await Transaction.DisposeAsync();
        await Connection.DisposeAsync();
    }
}
