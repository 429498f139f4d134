using Npgsql;
using Platform.Contracts.Tenancy;
using Platform.EventSourcing;
using Platform.EventSourcing.Subscriptions;
using Platform.Tenancy.ApiKeys;
using Platform.Tenancy.Users;

namespace Platform.Tenancy.Directory;

/// <summary>
/// Tenants and users as tables, kept in the appending transaction: their unique slug and username refuse a
/// duplicate before its events commit, and login and listings read them.
/// </summary>
public sealed class TenancyDirectory(string schema) : IProjection
{
    public const string UniqueViolation = PostgresErrorCodes.UniqueViolation;

    public string Name => "tenancy-directory";

    public static SchemaMigration Migration { get; } = new("tenancy-directory", 1, """
        CREATE TABLE {schema}.tenants (
            id uuid PRIMARY KEY,
            slug text NOT NULL UNIQUE,
            name text NOT NULL,
            created_at timestamptz NOT NULL
        );
        CREATE TABLE {schema}.users (
            id uuid PRIMARY KEY,
            tenant_id uuid REFERENCES {schema}.tenants (id),
            username text NOT NULL UNIQUE,
            role text NOT NULL,
            password_hash text,
            created_at timestamptz NOT NULL
        );
        CREATE INDEX ON {schema}.users (tenant_id, id);
        """);

    public static SchemaMigration ApiKeysMigration { get; } = new("tenancy-directory", 2, """
        CREATE TABLE {schema}.api_keys (
            id uuid PRIMARY KEY,
            tenant_id uuid REFERENCES {schema}.tenants (id),
            name text NOT NULL,
            role text NOT NULL,
            prefix text NOT NULL UNIQUE,
            key_hash text,
            expires_at timestamptz,
            created_at timestamptz NOT NULL,
            revoked_at timestamptz
        );
        CREATE INDEX ON {schema}.api_keys (tenant_id, id);
        """);

    public async Task ApplyAsync(IReadOnlyList<StoredEvent> events, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        foreach (var stored in events)
        {
            await using var command = stored.Data switch
            {
                TenantCreated tenant => transaction.Command($"INSERT INTO {schema}.tenants (id, slug, name, created_at) VALUES ($1, $2, $3, $4)",
                    tenant.TenantId, tenant.Slug, tenant.Name, tenant.CreatedAt),
                UserCreated user => transaction.Command($"INSERT INTO {schema}.users (id, tenant_id, username, role, created_at) VALUES ($1, $2, $3, $4, $5)",
                    user.UserId, user.TenantId, user.Username, user.Role, user.CreatedAt),
                UserPasswordHashSet password => transaction.Command($"UPDATE {schema}.users SET password_hash = $2 WHERE id = $1",
                    password.UserId, password.PasswordHash),
                ApiKeyCreated key => transaction.Command($"INSERT INTO {schema}.api_keys (id, tenant_id, name, role, prefix, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    key.KeyId, key.TenantId, key.Name, key.Role, key.Prefix, key.ExpiresAt, key.CreatedAt),
                ApiKeyHashSet hash => transaction.Command($"UPDATE {schema}.api_keys SET key_hash = $2 WHERE id = $1", hash.KeyId, hash.KeyHash),
                ApiKeyRevoked revoked => transaction.Command($"UPDATE {schema}.api_keys SET revoked_at = $2 WHERE id = $1", revoked.KeyId, revoked.RevokedAt),
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
        await transaction.ExecuteAsync($"TRUNCATE {schema}.api_keys, {schema}.users, {schema}.tenants", cancellationToken);
    }
}
