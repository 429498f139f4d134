using Npgsql;
using Platform.EventSourcing;
using Platform.Hosting.Security;

namespace Platform.Tenancy.Auth;

/// <summary>
/// The keys tokens are signed with, kept in tenancy's schema (never in events or logs). There is always a
/// current key and a next one; both are published, so after a rotation the gateway already knows the key new
/// tokens are signed with. A retired key stays published for one token lifetime so its tokens stay valid.
/// </summary>
public sealed class SigningKeys(NpgsqlDataSource dataSource, TimeProvider time)
{
    public static readonly TimeSpan TokenLifetime = TimeSpan.FromHours(24);

    public static SchemaMigration Migration { get; } = new("signing-keys", 1, """
        CREATE TABLE {schema}.signing_keys (
            kid text PRIMARY KEY,
            private_key bytea NOT NULL,
            created_at timestamptz NOT NULL,
            activated_at timestamptz,
            retired_at timestamptz
        );
        """);

    private readonly SemaphoreSlim _gate = new(1, 1);
    private SigningKey? _current;

    public async Task<SigningKey> CurrentAsync(CancellationToken cancellationToken)
    {
        if (_current is { } current)
        {
            return current;
        }

        await _gate.WaitAsync(cancellationToken);
        try
        {
            return _current ??= await ChangeAsync(rotate: false, cancellationToken);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Retires the current key, signs with the next one from now on, and prepares a new next one.</summary>
    public async Task<SigningKey> RotateAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            return _current = await ChangeAsync(rotate: true, cancellationToken);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Every key a valid token can be signed with now or after the next rotation.</summary>
    public async Task<IReadOnlyList<SigningKey>> PublishedAsync(CancellationToken cancellationToken)
    {
        await CurrentAsync(cancellationToken);
        await using var command = dataSource.CreateCommand(
            $"SELECT kid, private_key FROM {TenancyService.Schema}.signing_keys WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC");
        command.Parameters.Add(new NpgsqlParameter { Value = time.GetUtcNow() - TokenLifetime - TimeSpan.FromMinutes(5) });
        var keys = new List<SigningKey>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            keys.Add(SigningKey.FromPrivateKey(reader.GetString(0), reader.GetFieldValue<byte[]>(1)));
        }

        return keys;
    }

    private async Task<SigningKey> ChangeAsync(bool rotate, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        // Instances starting or rotating together must agree on one key.
        await ExecuteAsync(connection, transaction, "SELECT pg_advisory_xact_lock(hashtextextended('platform-signing-keys', 0))");
        var now = time.GetUtcNow();
        if (rotate)
        {
            await ExecuteAsync(connection, transaction, $"UPDATE {TenancyService.Schema}.signing_keys SET retired_at = $1 WHERE activated_at IS NOT NULL AND retired_at IS NULL", now);
            await ExecuteAsync(connection, transaction, $"UPDATE {TenancyService.Schema}.signing_keys SET activated_at = $1 WHERE activated_at IS NULL", now);
        }

        var current = await ReadAsync(connection, transaction, "activated_at IS NOT NULL AND retired_at IS NULL", cancellationToken);
        if (current is null)
        {
            current = SigningKey.Generate(Guid.CreateVersion7(now).ToString("N"));
            await InsertAsync(connection, transaction, current, now, activated: true);
        }

        if (await ReadAsync(connection, transaction, "activated_at IS NULL", cancellationToken) is null)
        {
            await InsertAsync(connection, transaction, SigningKey.Generate(Guid.CreateVersion7(now).ToString("N")), now, activated: false);
        }

        await transaction.CommitAsync(cancellationToken);
        return current;
    }

    private static async Task<SigningKey?> ReadAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string condition, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"SELECT kid, private_key FROM {TenancyService.Schema}.signing_keys WHERE {condition} ORDER BY created_at DESC LIMIT 1", connection, transaction);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? SigningKey.FromPrivateKey(reader.GetString(0), reader.GetFieldValue<byte[]>(1)) : null;
    }

    private static Task InsertAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, SigningKey key, DateTimeOffset now, bool activated) =>
        ExecuteAsync(connection, transaction, $"INSERT INTO {TenancyService.Schema}.signing_keys (kid, private_key, created_at, activated_at) VALUES ($1, $2, $3, $4)",
            key.KeyId, key.ExportPrivateKey(), now, activated ? now : DBNull.Value);

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, params object[] values)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        foreach (var value in values)
        {
            command.Parameters.Add(value is DBNull ? new NpgsqlParameter { Value = value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.TimestampTz } : new NpgsqlParameter { Value = value });
        }

        await command.ExecuteNonQueryAsync();
    }
}
