using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Platform.Contracts;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;

namespace Platform.Telemetry.Audit;

public sealed record AuditPage(IReadOnlyList<AuditEntry> Items, string? NextCursor);

/// <summary>
/// The audit log through the API: <c>GET /api/v1/audit</c> pages through it in global order, and
/// <c>GET /api/v1/events</c> streams it live as Server-Sent Events, resumable with <c>Last-Event-ID</c>.
/// A tenant's users see their tenant's events; a platform-admin sees everything.
/// </summary>
public static class AuditEndpoints
{
    public const int MaxLimit = 1000;
    private static readonly TimeSpan KeepAlive = TimeSpan.FromSeconds(15);

    /// <summary>Every event type a filter may name: the contracts' integration events.</summary>
    public static IReadOnlySet<string> KnownTypes { get; } = ContractsAssembly.Assembly.GetExportedTypes()
        .Where(t => typeof(IIntegrationEvent).IsAssignableFrom(t) && t is { IsClass: true, IsAbstract: false })
        .Select(t => t.Name)
        .ToHashSet(StringComparer.Ordinal);

    public static void MapAudit(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/v1/audit", ListAsync);
        app.MapGet("/api/v1/events", StreamAsync);
    }

    private static async Task<Ok<AuditPage>> ListAsync(
        Caller caller, AuditLog log, string? from, string? until, string? stream, string? type, string? actor, string? after, string? cursor, int? limit, bool? newest, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        var query = Scope(caller, new AuditQuery(
            After: Position(cursor ?? after, cursor is null ? "after" : "cursor", errors),
            Types: Types(type, errors),
            StreamId: stream,
            Actor: actor,
            From: Time(from, "from", errors),
            Until: Time(until, "until", errors),
            Limit: limit ?? 100,
            Newest: newest ?? false));
        if (limit is < 1 or > MaxLimit)
        {
            errors["limit"] = [$"must be between 1 and {MaxLimit}"];
        }

        if (errors.Count > 0)
        {
            throw Problems.Validation(errors);
        }

        if (query.Newest)
        {
            // The last entries there are now: nothing comes after them yet (go on with after=, or the live stream).
            return TypedResults.Ok(new AuditPage(await log.ReadAsync(query, cancellationToken), null));
        }

        var entries = await log.ReadAsync(query with { Limit = query.Limit + 1 }, cancellationToken);
        return TypedResults.Ok(entries.Count > query.Limit
            ? new AuditPage(entries.Take(query.Limit).ToArray(), entries[query.Limit - 1].Position.ToString(System.Globalization.CultureInfo.InvariantCulture))
            : new AuditPage(entries, null));
    }

    private static async Task StreamAsync(HttpContext http, Caller caller, AuditLog log, string? type, string? after, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        var resumeFrom = http.Request.Headers["Last-Event-ID"].ToString() is { Length: > 0 } lastEventId ? lastEventId : after;
        var query = Scope(caller, new AuditQuery(After: Position(resumeFrom, "Last-Event-ID", errors), Types: Types(type, errors), Limit: 500));
        if (errors.Count > 0)
        {
            throw Problems.Validation(errors);
        }

        http.Response.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        http.Response.Headers["X-Accel-Buffering"] = "no";
        await http.Response.Body.FlushAsync(cancellationToken);
        await using var listener = await log.ListenAsync(cancellationToken);
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var entries = await log.ReadAsync(query, cancellationToken);
                foreach (var entry in entries)
                {
                    var frame = $"id: {entry.Position}\nevent: {entry.Type}\ndata: {JsonSerializer.Serialize(entry, PlatformJson.Options)}\n\n";
                    await http.Response.Body.WriteAsync(Encoding.UTF8.GetBytes(frame), cancellationToken);
                    query = query with { After = entry.Position };
                }

                if (entries.Count > 0)
                {
                    await http.Response.Body.FlushAsync(cancellationToken);
                    continue;
                }

                if (!await listener.WaitAsync(KeepAlive, cancellationToken))
                {
                    await http.Response.Body.WriteAsync(": keep-alive\n\n"u8.ToArray(), cancellationToken);
                    await http.Response.Body.FlushAsync(cancellationToken);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client went away: nothing to answer.
        }
    }

    private static AuditQuery Scope(Caller caller, AuditQuery query) =>
        caller.SeesAllTenants
            ? query with { AllTenants = true }
            : query with { TenantId = caller.TenantId ?? Guid.Empty };

    private static long Position(string? value, string field, Dictionary<string, string[]> errors)
    {
        if (string.IsNullOrEmpty(value))
        {
            return 0;
        }

        if (long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var position))
        {
            return position;
        }

        errors[field] = ["must be a position this API returned (a whole number)"];
        return 0;
    }

    private static DateTimeOffset? Time(string? value, string field, Dictionary<string, string[]> errors)
    {
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }

        if (DateTimeOffset.TryParse(value, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.RoundtripKind, out var time))
        {
            return time;
        }

        errors[field] = ["must be an ISO 8601 time, e.g. 2026-11-22T04:00:00Z"];
        return null;
    }

    private static IReadOnlyList<string>? Types(string? value, Dictionary<string, string[]> errors)
    {
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }

        var types = value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var unknown = types.Where(t => !KnownTypes.Contains(t)).ToArray();
        if (unknown.Length > 0)
        {
            errors["type"] = [$"unknown event type(s): {string.Join(", ", unknown)}"];
        }

        return types;
    }
}
