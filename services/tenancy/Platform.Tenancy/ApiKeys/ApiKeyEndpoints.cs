using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;
using Platform.Contracts.Tenancy;
using Platform.Hosting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;
using Platform.Tenancy.Directory;

namespace Platform.Tenancy.ApiKeys;

public sealed record CreateApiKeyRequest(string? Name, string? Role, DateTimeOffset? ExpiresAt);

public sealed record ApiKeyView(Guid Id, Guid? TenantId, string Name, string Role, string Prefix, DateTimeOffset? ExpiresAt, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt);

/// <summary>The one answer that shows the key itself.</summary>
public sealed record CreatedApiKey(Guid Id, Guid? TenantId, string Name, string Role, string Prefix, string Key, DateTimeOffset? ExpiresAt, DateTimeOffset CreatedAt);

public sealed record IntrospectRequest(string? Key);

/// <summary>Who a valid key stands for; the gateway caches it until <see cref="ExpiresAt"/> at the latest.</summary>
public sealed record IntrospectedKey(Guid KeyId, Guid? TenantId, string Role, DateTimeOffset? ExpiresAt);

public static class ApiKeyEndpoints
{
    public static void MapApiKeys(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/v1/api-keys", CreateAsync);
        app.MapGet("/api/v1/api-keys", ListAsync);
        app.MapDelete("/api/v1/api-keys/{keyId:guid}", RevokeAsync);
        // Not under /api/v1: the gateway has no route to it; only the gateway itself calls it.
        app.MapPost("/internal/api-keys/introspect", IntrospectAsync);
    }

    private static async Task<Created<CreatedApiKey>> CreateAsync(CreateApiKeyRequest? request, Caller caller, TenancyEvents events, TimeProvider time, CancellationToken cancellationToken)
    {
        if (caller.Role is not (Roles.PlatformAdmin or Roles.TenantAdmin))
        {
            throw Problems.Forbidden("Only a tenant-admin or a platform-admin creates API keys.");
        }

        var now = time.GetUtcNow();
        var allowed = caller.SeesAllTenants ? [Roles.PlatformAdmin] : Roles.TenantRoles;
        var errors = new Dictionary<string, string[]>();
        if (request?.Name is not { } name || name.Trim().Length is 0 or > 100)
        {
            errors["name"] = ["must be 1 to 100 characters"];
        }

        if (request?.Role is not { } role || !allowed.Contains(role))
        {
            errors["role"] = [$"must be one of {string.Join(", ", allowed)}"];
        }

        if (request?.ExpiresAt is { } expires && expires <= now)
        {
            errors["expiresAt"] = ["must be in the future"];
        }

        if (errors.Count > 0)
        {
            throw Problems.Validation(errors);
        }

        var (key, prefix) = ApiKeySecrets.Generate();
        var created = new ApiKeyCreated(Guid.CreateVersion7(now), caller.TenantId, request!.Name!.Trim(), request.Role!, prefix, request.ExpiresAt, now);
        await events.AppendAsync($"api-key-{created.KeyId}", [created, new ApiKeyHashSet(created.KeyId, ApiKeySecrets.Hash(key))], caller, caller.TenantId, "An API key with that prefix exists; try again.", cancellationToken);
        return TypedResults.Created($"/api/v1/api-keys/{created.KeyId}", new CreatedApiKey(created.KeyId, created.TenantId, created.Name, created.Role, prefix, key, created.ExpiresAt, now));
    }

    private static async Task<Ok<Page<ApiKeyView>>> ListAsync(Caller caller, NpgsqlDataSource dataSource, int? limit, string? cursor, CancellationToken cancellationToken)
    {
        var (take, after) = Paging.Read(limit, cursor);
        await using var command = dataSource.CreateCommand(
            $"SELECT {Columns} FROM {TenancyService.Schema}.api_keys WHERE tenant_id IS NOT DISTINCT FROM $1 AND id > $2 ORDER BY id LIMIT $3");
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)caller.TenantId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Uuid });
        command.Parameters.Add(new NpgsqlParameter { Value = after });
        command.Parameters.Add(new NpgsqlParameter { Value = take + 1 });
        return TypedResults.Ok(Paging.Of((await ReadAsync(command, cancellationToken)).Select(k => k.View).ToArray(), take, k => k.Id));
    }

    private static async Task<NoContent> RevokeAsync(Guid keyId, Caller caller, NpgsqlDataSource dataSource, TenancyEvents events, TimeProvider time, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM {TenancyService.Schema}.api_keys WHERE id = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = keyId });
        var key = (await ReadAsync(command, cancellationToken)).SingleOrDefault();
        if (key is null || !(caller.IsPlatformAdmin || caller.TenantId == key.View.TenantId))
        {
            throw Problems.NotFound("API key");
        }

        if (caller.Role is not (Roles.PlatformAdmin or Roles.TenantAdmin))
        {
            throw Problems.Forbidden("Only a tenant-admin or a platform-admin revokes API keys.");
        }

        if (key.View.RevokedAt is null)
        {
            await events.AppendAsync($"api-key-{keyId}", [new ApiKeyRevoked(keyId, key.View.TenantId, time.GetUtcNow())], caller, key.View.TenantId, "The key changed concurrently.", cancellationToken);
        }

        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<IntrospectedKey>, NotFound>> IntrospectAsync(IntrospectRequest? request, NpgsqlDataSource dataSource, TimeProvider time, CancellationToken cancellationToken)
    {
        if (request?.Key is not { } presented || ApiKeySecrets.PrefixOf(presented) is not { } prefix)
        {
            return TypedResults.NotFound();
        }

        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM {TenancyService.Schema}.api_keys WHERE prefix = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = prefix });
        var key = (await ReadAsync(command, cancellationToken)).SingleOrDefault();
        var valid = key is { View.RevokedAt: null }
            && (key.View.ExpiresAt is null || key.View.ExpiresAt > time.GetUtcNow())
            && CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(key.Hash), Encoding.ASCII.GetBytes(ApiKeySecrets.Hash(presented)));
        return valid
            ? TypedResults.Ok(new IntrospectedKey(key!.View.Id, key.View.TenantId, key.View.Role, key.View.ExpiresAt))
            : TypedResults.NotFound();
    }

    private const string Columns = "id, tenant_id, name, role, prefix, expires_at, created_at, revoked_at, key_hash";

    private static async Task<List<StoredKey>> ReadAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        var keys = new List<StoredKey>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            keys.Add(new StoredKey(
                new ApiKeyView(
                    reader.GetGuid(0),
                    reader.IsDBNull(1) ? null : reader.GetGuid(1),
                    reader.GetString(2),
                    reader.GetString(3),
                    reader.GetString(4),
                    reader.IsDBNull(5) ? null : reader.GetFieldValue<DateTimeOffset>(5),
                    reader.GetFieldValue<DateTimeOffset>(6),
                    reader.IsDBNull(7) ? null : reader.GetFieldValue<DateTimeOffset>(7)),
                reader.IsDBNull(8) ? "" : reader.GetString(8)));
        }

        return keys;
    }

    private sealed record StoredKey(ApiKeyView View, string Hash);
}
