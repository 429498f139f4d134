using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;
using Platform.Contracts.Tenancy;
using Platform.Hosting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;
using Platform.Tenancy.Directory;

namespace Platform.Tenancy.Tenants;

public sealed record CreateTenantRequest(string? Slug, string? Name);

public sealed record TenantView(Guid Id, string Slug, string Name, DateTimeOffset CreatedAt);

public static partial class TenantEndpoints
{
    public static void MapTenants(this IEndpointRouteBuilder app)
    {
        var tenants = app.MapGroup("/api/v1/tenants");
        tenants.MapPost("", CreateAsync);
        tenants.MapGet("", ListAsync);
        tenants.MapGet("/{tenantId:guid}", GetAsync);
    }

    private static async Task<Created<TenantView>> CreateAsync(CreateTenantRequest? request, Caller caller, TenancyEvents events, TimeProvider time, CancellationToken cancellationToken)
    {
        if (!caller.IsPlatformAdmin)
        {
            throw Problems.Forbidden("Only a platform-admin creates tenants.");
        }

        var errors = new Dictionary<string, string[]>();
        if (request?.Slug is not { } slug || !Slug().IsMatch(slug))
        {
            errors["slug"] = ["must be 1 to 63 lower-case letters, digits or '-', starting and ending with a letter or digit"];
        }

        if (request?.Name is not { } name || name.Trim().Length is 0 or > 100)
        {
            errors["name"] = ["must be 1 to 100 characters"];
        }

        if (errors.Count > 0)
        {
            throw Problems.Validation(errors);
        }

        var now = time.GetUtcNow();
        var created = new TenantCreated(Guid.CreateVersion7(now), request!.Slug!, request.Name!.Trim(), now);
        await events.AppendAsync($"tenant-{created.TenantId}", [created], caller, created.TenantId, $"A tenant with slug '{created.Slug}' exists already.", cancellationToken);
        return TypedResults.Created($"/api/v1/tenants/{created.TenantId}", new TenantView(created.TenantId, created.Slug, created.Name, created.CreatedAt));
    }

    /// <summary>A platform-admin lists every tenant; anyone else sees only their own.</summary>
    private static async Task<Ok<Page<TenantView>>> ListAsync(Caller caller, NpgsqlDataSource dataSource, int? limit, string? cursor, CancellationToken cancellationToken)
    {
        var (take, after) = Paging.Read(limit, cursor);
        await using var command = dataSource.CreateCommand(
            $"SELECT id, slug, name, created_at FROM {TenancyService.Schema}.tenants WHERE id > $1 AND ($2::uuid IS NULL OR id = $2) ORDER BY id LIMIT $3");
        command.Parameters.Add(new NpgsqlParameter { Value = after });
        command.Parameters.Add(new NpgsqlParameter { Value = caller.IsPlatformAdmin ? DBNull.Value : (object?)caller.TenantId ?? Guid.Empty, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Uuid });
        command.Parameters.Add(new NpgsqlParameter { Value = take + 1 });
        return TypedResults.Ok(Paging.Of(await ReadAsync(command, cancellationToken), take, t => t.Id));
    }

    private static async Task<Ok<TenantView>> GetAsync(Guid tenantId, Caller caller, NpgsqlDataSource dataSource, CancellationToken cancellationToken) =>
        TypedResults.Ok(await FindVisibleAsync(dataSource, caller, tenantId, cancellationToken));

    /// <summary>The tenant, if it exists and the caller may see it; otherwise 404, so another tenant's existence does not leak.</summary>
    public static async Task<TenantView> FindVisibleAsync(NpgsqlDataSource dataSource, Caller caller, Guid tenantId, CancellationToken cancellationToken)
    {
        if (!caller.CanSee(tenantId))
        {
            throw Problems.NotFound("tenant");
        }

        await using var command = dataSource.CreateCommand($"SELECT id, slug, name, created_at FROM {TenancyService.Schema}.tenants WHERE id = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = tenantId });
        return (await ReadAsync(command, cancellationToken)).SingleOrDefault() ?? throw Problems.NotFound("tenant");
    }

    private static async Task<List<TenantView>> ReadAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        var tenants = new List<TenantView>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            tenants.Add(new TenantView(reader.GetGuid(0), reader.GetString(1), reader.GetString(2), reader.GetFieldValue<DateTimeOffset>(3)));
        }

        return tenants;
    }

    [GeneratedRegex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    private static partial Regex Slug();
}
