using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.RateLimiting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;

namespace Platform.Gateway;

/// <summary>
/// What one client may send: a request body of at most <c>Platform:Gateway:MaxRequestBodyBytes</c> (an upload into a
/// machine, <c>PUT …/files/…</c> or <c>…/archive/…</c>, of at most <c>Platform:Gateway:MaxUploadBytes</c>), and a
/// token bucket per tenant (per user for tenant-less platform-admins, per address for anonymous callers)
/// of <c>Platform:Gateway:RateLimit:RequestsPerSecond</c> with bursts up to <c>…:Burst</c>. A tenant that
/// spends its bucket gets 429 with Retry-After; other tenants do not notice.
/// </summary>
public static class GatewayLimits
{
    public static void Add(WebApplicationBuilder builder)
    {
        var maxBody = builder.Configuration.GetValue<long>("Platform:Gateway:MaxRequestBodyBytes", 1024 * 1024);
        var maxUpload = builder.Configuration.GetValue<long>("Platform:Gateway:MaxUploadBytes", 1024L * 1024 * 1024);
        var perSecond = builder.Configuration.GetValue("Platform:Gateway:RateLimit:RequestsPerSecond", 100);
        var burst = builder.Configuration.GetValue("Platform:Gateway:RateLimit:Burst", 200);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = maxBody);
        builder.Services.AddRateLimiter(options =>
        {
            options.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
                context.Request.Path.StartsWithSegments("/health")
                    ? RateLimitPartition.GetNoLimiter("health")
                    : RateLimitPartition.GetTokenBucketLimiter(PartitionOf(context), _ => new TokenBucketRateLimiterOptions
                    {
                        TokenLimit = burst,
                        TokensPerPeriod = perSecond,
                        ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                        QueueLimit = 0,
                        AutoReplenishment = true,
                    }));
            options.OnRejected = async (rejected, cancellationToken) =>
            {
                var retryAfter = rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)) : 1;
                var response = rejected.HttpContext.Response;
                response.StatusCode = StatusCodes.Status429TooManyRequests;
                response.Headers.RetryAfter = retryAfter.ToString(System.Globalization.CultureInfo.InvariantCulture);
                await rejected.HttpContext.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
                {
                    HttpContext = rejected.HttpContext,
                    ProblemDetails = new ProblemDetails
                    {
                        Status = StatusCodes.Status429TooManyRequests,
                        Type = ProblemTypes.RateLimited,
                        Title = "Too many requests.",
                        Detail = $"This tenant's request budget is spent; retry after {retryAfter} s.",
                    },
                });
            };
        });
        builder.Services.AddSingleton(new BodyLimit(maxBody, maxUpload));
    }

    public static void Use(WebApplication app)
    {
        var limits = app.Services.GetRequiredService<BodyLimit>();
        app.Use((context, next) =>
        {
            var limit = limits.Bytes;
            if (IsUpload(context.Request))
            {
                limit = limits.UploadBytes;
                if (context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } feature)
                {
                    feature.MaxRequestBodySize = limit;
                }
            }

            // Refuse a declared oversize body before any of it is read or forwarded.
            if (context.Request.ContentLength > limit)
            {
                throw new ProblemException(ProblemTypes.PayloadTooLarge, StatusCodes.Status413PayloadTooLarge, "The request body is too large.", $"At most {limit} bytes.",
                    new Dictionary<string, object?> { ["limitBytes"] = limit });
            }

            return next(context);
        });
        app.UseRateLimiter();
    }

    private static string PartitionOf(HttpContext context) => context.Features.Get<Caller>() switch
    {
        { TenantId: { } tenant } => "tenant:" + tenant,
        { } caller => "caller:" + caller.Subject,
        null => "address:" + context.Connection.RemoteIpAddress,
    };

    /// <summary><c>PUT /api/v1/machines/{id}/files/…</c> or <c>…/archive/…</c>.</summary>
    private static bool IsUpload(HttpRequest request) =>
        HttpMethods.IsPut(request.Method) && request.Path.Value is { } path && path.StartsWith("/api/v1/machines/", StringComparison.Ordinal)
        && (path.Contains("/files/", StringComparison.Ordinal) || path.Contains("/archive/", StringComparison.Ordinal));

    private sealed record BodyLimit(long Bytes, long UploadBytes);
}
