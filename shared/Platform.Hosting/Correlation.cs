using System.Diagnostics;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Platform.Hosting;

/// <summary>
/// Every request carries a correlation id in and out (<c>X-Correlation-Id</c>): the client's when it sent a
/// sensible one, a new one otherwise. The gateway passes it on to the service, so one id follows a request
/// through the logs of both and is tagged on its spans.
/// </summary>
internal sealed partial class CorrelationMiddleware(RequestDelegate next, ILogger<CorrelationMiddleware> logger)
{
    public const string Header = "X-Correlation-Id";

    public async Task InvokeAsync(HttpContext context)
    {
        var presented = context.Request.Headers[Header].ToString();
        var id = Acceptable().IsMatch(presented) ? presented : Guid.CreateVersion7().ToString("N");
        context.Request.Headers[Header] = id;
        context.Features.Set(new RequestCorrelation(id));
        context.Response.OnStarting(() =>
        {
            context.Response.Headers[Header] = id;
            return Task.CompletedTask;
        });
        Activity.Current?.SetTag("platform.correlation_id", id);
        using (logger.BeginScope(new Dictionary<string, object> { ["CorrelationId"] = id }))
        {
            await next(context);
        }
    }

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex Acceptable();
}

/// <summary>The request's correlation id; events a request causes carry it (when it is a GUID, as generated ones are).</summary>
public sealed record RequestCorrelation(string Id)
{
    public Guid? AsGuid => Guid.TryParse(Id, out var id) ? id : null;

    public static Guid? Of(HttpContext? context) => context?.Features.Get<RequestCorrelation>()?.AsGuid;
}
