using Npgsql;
using NpgsqlTypes;
using Platform.EventSourcing;

namespace Platform.Telemetry.BrokerSubscriptions;

/// <summary>The subscriptions of kind <c>amqp</c> (their names; the password is the broker's alone).</summary>
public sealed class BrokerSubscriptionStore(NpgsqlDataSource dataSource)
{
    public static SchemaMigration Migration { get; } = new("broker-subscriptions", 1, """
        CREATE TABLE {schema}.broker_subscriptions (
            id uuid PRIMARY KEY,
            tenant_id uuid,
            queue text NOT NULL,
            username text NOT NULL,
            created_at timestamptz NOT NULL,
            deleted_at timestamptz
        );
        """);

    private const string Columns = "id, tenant_id, queue, username, created_at";

    public async Task InsertAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, BrokerSubscription subscription, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"INSERT INTO {TelemetryService.Schema}.broker_subscriptions ({Columns}) VALUES ($1, $2, $3, $4, $5)", connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = subscription.Id });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)subscription.TenantId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        command.Parameters.Add(new NpgsqlParameter { Value = subscription.Queue });
        command.Parameters.Add(new NpgsqlParameter { Value = subscription.Username });
        command.Parameters.Add(new NpgsqlParameter { Value = subscription.CreatedAt });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task DeleteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid id, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"UPDATE {TelemetryService.Schema}.broker_subscriptions SET deleted_at = $2 WHERE id = $1", connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = id });
        command.Parameters.Add(new NpgsqlParameter { Value = now });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<BrokerSubscription?> FindAsync(Guid id, CancellationToken cancellationToken) =>
        (await QueryAsync($"SELECT {Columns} FROM {TelemetryService.Schema}.broker_subscriptions WHERE id = $1 AND deleted_at IS NULL", cancellationToken, id)).SingleOrDefault();

    public Task<IReadOnlyList<BrokerSubscription>> ListAsync(Guid? tenantId, bool allTenants, CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {Columns} FROM {TelemetryService.Schema}.broker_subscriptions WHERE deleted_at IS NULL AND ($1 OR tenant_id IS NOT DISTINCT FROM $2) ORDER BY id", cancellationToken, allTenants, (object?)tenantId ?? DBNull.Value);

    private async Task<IReadOnlyList<BrokerSubscription>> QueryAsync(string sql, CancellationToken cancellationToken, params object[] values)
    {
        await using var command = dataSource.CreateCommand(sql);
        foreach (var value in values)
        {
            command.Parameters.Add(value is DBNull ? new NpgsqlParameter { Value = value, NpgsqlDbType = NpgsqlDbType.Uuid } : new NpgsqlParameter { Value = value });
        }

        var subscriptions = new List<BrokerSubscription>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            subscriptions.Add(new BrokerSubscription(reader.GetGuid(0), reader.IsDBNull(1) ? null : reader.GetGuid(1), reader.GetString(2), reader.GetString(3), reader.GetFieldValue<DateTimeOffset>(4)));
        }

        return subscriptions;
    }
}
