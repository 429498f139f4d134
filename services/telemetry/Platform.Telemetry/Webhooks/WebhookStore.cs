using Npgsql;
using NpgsqlTypes;
using Platform.EventSourcing;

namespace Platform.Telemetry.Webhooks;

/// <summary>A subscription as delivery sees it: where, what, and how far it got.</summary>
public sealed record WebhookSubscription(
    Guid Id, Guid? TenantId, string Url, string[]? EventTypes, string Secret, long Cursor, int Attempts, DateTimeOffset NextAttemptAt, string? LastError, DateTimeOffset CreatedAt);

public sealed record DeadLetter(Guid SubscriptionId, long Position, Guid EventId, int Attempts, string? LastError, DateTimeOffset DeadAt);

/// <summary>Subscriptions and their delivery progress and dead letters, in telemetry's schema. Secrets live here only.</summary>
public sealed class WebhookStore(NpgsqlDataSource dataSource)
{
    public static SchemaMigration Migration { get; } = new("webhooks", 1, """
        CREATE TABLE {schema}.webhook_subscriptions (
            id uuid PRIMARY KEY,
            tenant_id uuid,
            url text NOT NULL,
            event_types text[],
            secret text NOT NULL,
            cursor bigint NOT NULL,
            attempts int NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL,
            last_error text,
            created_at timestamptz NOT NULL,
            deleted_at timestamptz
        );
        CREATE TABLE {schema}.webhook_dead_letters (
            subscription_id uuid NOT NULL REFERENCES {schema}.webhook_subscriptions (id),
            position bigint NOT NULL,
            event_id uuid NOT NULL,
            attempts int NOT NULL,
            last_error text,
            dead_at timestamptz NOT NULL,
            redeliver boolean NOT NULL DEFAULT false,
            delivered_at timestamptz,
            PRIMARY KEY (subscription_id, position)
        );
        """);

    private const string Columns = "id, tenant_id, url, event_types, secret, cursor, attempts, next_attempt_at, last_error, created_at";

    public async Task InsertAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, WebhookSubscription subscription, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"INSERT INTO {TelemetryService.Schema}.webhook_subscriptions ({Columns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = subscription.Id });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)subscription.TenantId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        command.Parameters.Add(new NpgsqlParameter { Value = subscription.Url });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)subscription.EventTypes ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = subscription.Secret });
        command.Parameters.Add(new NpgsqlParameter { Value = subscription.Cursor });
        command.Parameters.Add(new NpgsqlParameter { Value = subscription.Attempts });
        command.Parameters.Add(new NpgsqlParameter { Value = subscription.NextAttemptAt });
        command.Parameters.Add(new NpgsqlParameter { Value = DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = subscription.CreatedAt });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<WebhookSubscription?> FindAsync(Guid id, CancellationToken cancellationToken) =>
        (await QueryAsync($"SELECT {Columns} FROM {TelemetryService.Schema}.webhook_subscriptions WHERE id = $1 AND deleted_at IS NULL", cancellationToken, id)).SingleOrDefault();

    public Task<IReadOnlyList<WebhookSubscription>> ListAsync(Guid? tenantId, bool allTenants, CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {Columns} FROM {TelemetryService.Schema}.webhook_subscriptions WHERE deleted_at IS NULL AND ($1 OR tenant_id IS NOT DISTINCT FROM $2) ORDER BY id", cancellationToken, allTenants, (object?)tenantId ?? DBNull.Value);

    /// <summary>Subscriptions whose next attempt is due.</summary>
    public Task<IReadOnlyList<WebhookSubscription>> DueAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {Columns} FROM {TelemetryService.Schema}.webhook_subscriptions WHERE deleted_at IS NULL AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2", cancellationToken, now, limit);

    public Task DeliveredAsync(Guid id, long position, DateTimeOffset now, CancellationToken cancellationToken) =>
        ExecuteAsync($"UPDATE {TelemetryService.Schema}.webhook_subscriptions SET cursor = $2, attempts = 0, last_error = NULL, next_attempt_at = $3 WHERE id = $1", cancellationToken, id, position, now);

    public Task FailedAsync(Guid id, int attempts, DateTimeOffset nextAttemptAt, string error, CancellationToken cancellationToken) =>
        ExecuteAsync($"UPDATE {TelemetryService.Schema}.webhook_subscriptions SET attempts = $2, next_attempt_at = $3, last_error = $4 WHERE id = $1", cancellationToken, id, attempts, nextAttemptAt, error);

    /// <summary>Gives up on one event: it goes to the dead letters and delivery moves on past it.</summary>
    public async Task DeadLetterAsync(Guid id, long position, Guid eventId, int attempts, string error, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await ExecuteAsync($"""
            WITH dead AS (
                INSERT INTO {TelemetryService.Schema}.webhook_dead_letters (subscription_id, position, event_id, attempts, last_error, dead_at)
                VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING
            )
            UPDATE {TelemetryService.Schema}.webhook_subscriptions SET cursor = $2, attempts = 0, last_error = $5, next_attempt_at = $6 WHERE id = $1
            """, cancellationToken, id, position, eventId, attempts, error, now);
    }

    public Task ReplayFromAsync(Guid id, long position, DateTimeOffset now, CancellationToken cancellationToken) =>
        ExecuteAsync($"UPDATE {TelemetryService.Schema}.webhook_subscriptions SET cursor = $2, attempts = 0, next_attempt_at = $3 WHERE id = $1", cancellationToken, id, Math.Max(0, position - 1), now);

    public Task DeleteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid id, DateTimeOffset now, CancellationToken cancellationToken) =>
        ExecuteAsync(connection, transaction, $"UPDATE {TelemetryService.Schema}.webhook_subscriptions SET deleted_at = $2 WHERE id = $1", cancellationToken, id, now);

    public async Task<IReadOnlyList<DeadLetter>> DeadLettersAsync(Guid id, bool pendingRedeliveryOnly, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            SELECT subscription_id, position, event_id, attempts, last_error, dead_at FROM {TelemetryService.Schema}.webhook_dead_letters
            WHERE subscription_id = $1 AND delivered_at IS NULL AND (NOT $2 OR redeliver) ORDER BY position
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = id });
        command.Parameters.Add(new NpgsqlParameter { Value = pendingRedeliveryOnly });
        var letters = new List<DeadLetter>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            letters.Add(new DeadLetter(reader.GetGuid(0), reader.GetInt64(1), reader.GetGuid(2), reader.GetInt32(3), reader.IsDBNull(4) ? null : reader.GetString(4), reader.GetFieldValue<DateTimeOffset>(5)));
        }

        return letters;
    }

    /// <summary>Asks for every undelivered dead letter of the subscription to be sent again; returns how many.</summary>
    public async Task<int> RequestRedeliveryAsync(Guid id, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            WITH marked AS (
                UPDATE {TelemetryService.Schema}.webhook_dead_letters SET redeliver = true WHERE subscription_id = $1 AND delivered_at IS NULL RETURNING 1
            ), woken AS (
                UPDATE {TelemetryService.Schema}.webhook_subscriptions SET next_attempt_at = LEAST(next_attempt_at, $2) WHERE id = $1
            )
            SELECT count(*) FROM marked
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = id });
        command.Parameters.Add(new NpgsqlParameter { Value = now });
        return (int)(long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    public Task RedeliveredAsync(Guid id, long position, DateTimeOffset now, CancellationToken cancellationToken) =>
        ExecuteAsync($"UPDATE {TelemetryService.Schema}.webhook_dead_letters SET delivered_at = $3, redeliver = false WHERE subscription_id = $1 AND position = $2", cancellationToken, id, position, now);

    public Task RedeliveryFailedAsync(Guid id, long position, string error, CancellationToken cancellationToken) =>
        ExecuteAsync($"UPDATE {TelemetryService.Schema}.webhook_dead_letters SET redeliver = false, last_error = $3, attempts = attempts + 1 WHERE subscription_id = $1 AND position = $2", cancellationToken, id, position, error);

    private async Task<IReadOnlyList<WebhookSubscription>> QueryAsync(string sql, CancellationToken cancellationToken, params object[] values)
    {
        await using var command = dataSource.CreateCommand(sql);
        foreach (var value in values)
        {
            command.Parameters.Add(value is DBNull ? new NpgsqlParameter { Value = value, NpgsqlDbType = NpgsqlDbType.Uuid } : new NpgsqlParameter { Value = value });
        }

        var subscriptions = new List<WebhookSubscription>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            subscriptions.Add(new WebhookSubscription(
                reader.GetGuid(0),
                reader.IsDBNull(1) ? null : reader.GetGuid(1),
                reader.GetString(2),
                reader.IsDBNull(3) ? null : reader.GetFieldValue<string[]>(3),
                reader.GetString(4),
                reader.GetInt64(5),
                reader.GetInt32(6),
                reader.GetFieldValue<DateTimeOffset>(7),
                reader.IsDBNull(8) ? null : reader.GetString(8),
                reader.GetFieldValue<DateTimeOffset>(9)));
        }

        return subscriptions;
    }

    private async Task ExecuteAsync(string sql, CancellationToken cancellationToken, params object[] values)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await ExecuteAsync(connection, null, sql, cancellationToken, values);
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, CancellationToken cancellationToken, params object[] values)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        foreach (var value in values)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }

        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
