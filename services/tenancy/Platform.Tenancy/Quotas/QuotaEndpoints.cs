using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;
using Platform.Contracts.Tenancy;
using Platform.EventSourcing;
using Platform.Hosting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;
using Platform.Tenancy.Tenants;

namespace Platform.Tenancy.Quotas;

public sealed record QuotaView(Guid TenantId, QuotaResources Limits, QuotaResources Used);

public static class QuotaEndpoints
{
    public const int MaxLimit = 1_000_000_000;

    public static void MapQuotas(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/v1/quotas", (Caller caller, NpgsqlDataSource dataSource, QuotaStore quotas, CancellationToken cancellationToken) =>
            caller.TenantId is { } tenant
                ? GetAsync(tenant, caller, dataSource, quotas, cancellationToken)
                : throw Problems.NotFound("quota (a platform-admin reads /api/v1/tenants/{tenantId}/quotas)"));
        app.MapGet("/api/v1/tenants/{tenantId:guid}/quotas", GetAsync);
        app.MapPut("/api/v1/tenants/{tenantId:guid}/quotas", SetAsync);
    }

    private static async Task<Ok<QuotaView>> GetAsync(Guid tenantId, Caller caller, NpgsqlDataSource dataSource, QuotaStore quotas, CancellationToken cancellationToken)
    {
        await TenantEndpoints.FindVisibleAsync(dataSource, caller, tenantId, cancellationToken);
        var quota = (await quotas.LoadAsync(tenantId, cancellationToken)).State;
        return TypedResults.Ok(new QuotaView(tenantId, quota.Limits, quota.Used));
    }

    private static async Task<Ok<QuotaView>> SetAsync(
        Guid tenantId, QuotaResources? limits, Caller caller, HttpContext http, NpgsqlDataSource dataSource, QuotaStore quotas, EventStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        await TenantEndpoints.FindVisibleAsync(dataSource, caller, tenantId, cancellationToken);
        if (!caller.IsPlatformAdmin)
        {
            throw Problems.Forbidden("Only a platform-admin sets quotas.");
        }

        if (limits is null)
        {
            throw Problems.Invalid("body", "must name every limit");
        }

        var errors = limits.Named().Where(l => l.Amount is < 0 or > MaxLimit).ToDictionary(l => l.Name, _ => new[] { $"must be between 0 and {MaxLimit}" });
        if (errors.Count > 0)
        {
            throw Problems.Validation(errors);
        }

        await store.AppendAsync(TenantQuota.StreamOf(tenantId), ExpectedVersion.Any, [new QuotaLimitsSet(tenantId, limits, time.GetUtcNow())],
            new EventMetadata(RequestCorrelation.Of(http), TenantId: tenantId.ToString(), Actor: caller.Subject), cancellationToken);
        var quota = (await quotas.LoadAsync(tenantId, cancellationToken)).State;
        return TypedResults.Ok(new QuotaView(tenantId, quota.Limits, quota.Used));
    }
}
