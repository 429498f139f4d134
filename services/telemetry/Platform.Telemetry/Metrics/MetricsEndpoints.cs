using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;
using Platform.Telemetry.Machines;

namespace Platform.Telemetry.Metrics;

/// <summary>A machine's usage over one step: CPU in cores (average and busiest sample), memory in bytes, network bytes moved in the step.</summary>
public sealed record MachineMetricPoint(
    DateTimeOffset At, int Samples, double CpuCores, double CpuCoresMax, long MemoryBytes, long MemoryBytesMax, long MemoryLimitBytes,
    int? Processes, long DiskBytes, long NetworkRxBytes, long NetworkTxBytes);

/// <summary>A host's usage over one step: cores busy, memory in use of all it has, machines running.</summary>
public sealed record HostMetricPoint(DateTimeOffset At, int Samples, double CpuCores, double CpuCoresMax, long MemoryBytes, long MemoryBytesMax, long MemoryTotalBytes, int Machines);

public sealed record MetricSeries<T>(Guid Id, DateTimeOffset From, DateTimeOffset To, int StepSeconds, string Resolution, IReadOnlyList<T> Points);

/// <summary>A series over a period: <c>from</c>, <c>to</c> and <c>step</c> as the caller gave them, checked, with the series that answers them.</summary>
public sealed record MetricWindow(DateTimeOffset From, DateTimeOffset To, TimeSpan Step, MetricResolution Resolution);

/// <summary>
/// <c>GET /api/v1/machines/{id}/metrics</c> (the machine's tenant, or a platform-admin) and <c>GET /api/v1/hosts/{id}/metrics</c>
/// (platform-admins): a series over <c>from</c>–<c>to</c> in buckets of <c>step</c>, from the finest stored series that can answer.
/// </summary>
public static partial class MetricsEndpoints
{
    public const int MaxPoints = 10_000;
    private static readonly TimeSpan DefaultPeriod = TimeSpan.FromHours(1);
    private static readonly TimeSpan LongestPeriod = TimeSpan.FromDays(366);

    public static void MapMetrics(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/v1/machines/{machineId:guid}/metrics", MachineAsync);
        app.MapGet("/api/v1/hosts/{hostId:guid}/metrics", HostAsync);
    }

    private static async Task<Ok<MetricSeries<MachineMetricPoint>>> MachineAsync(
        Guid machineId, string? from, string? to, string? step, Caller caller, MachineLedger ledger, MetricStore metrics, IOptions<MetricsOptions> options, TimeProvider time,
        CancellationToken cancellationToken)
    {
        if (await ledger.FindAsync(machineId, cancellationToken) is not { } machine || !(caller.SeesAllTenants || machine.TenantId == caller.TenantId))
        {
            throw Problems.NotFound("machine");
        }

        var window = Window(from, to, step, time.GetUtcNow(), options.Value);
        var buckets = await metrics.ReadAsync(machineId, caller.SeesAllTenants ? null : machine.TenantId, window.Resolution, window.From, window.To, window.Step, cancellationToken);
        return TypedResults.Ok(Series(machineId, window, buckets.Select(b => new MachineMetricPoint(
            b.At, b.Samples, b.CpuCores, b.CpuCoresMax, b.MemoryBytes, b.MemoryBytesMax, b.MemoryLimitBytes, b.Processes, b.DiskBytes, b.NetworkRxBytes, b.NetworkTxBytes))));
    }

    private static async Task<Ok<MetricSeries<HostMetricPoint>>> HostAsync(
        Guid hostId, string? from, string? to, string? step, Caller caller, MetricStore metrics, IOptions<MetricsOptions> options, TimeProvider time, CancellationToken cancellationToken)
    {
        if (!caller.SeesAllTenants)
        {
            throw Problems.Forbidden("Hosts are the platform's; only a platform-admin reads their metrics.");
        }

        var window = Window(from, to, step, time.GetUtcNow(), options.Value);
        var buckets = await metrics.ReadAsync(hostId, null, window.Resolution, window.From, window.To, window.Step, cancellationToken);
        return TypedResults.Ok(Series(hostId, window, buckets.Select(b => new HostMetricPoint(
            b.At, b.Samples, b.CpuCores, b.CpuCoresMax, b.MemoryBytes, b.MemoryBytesMax, b.MemoryLimitBytes, b.Processes ?? 0))));
    }

    /// <summary>Reads and checks <c>from</c>, <c>to</c> (ISO 8601; the last hour by default) and <c>step</c> (<c>30s</c>, <c>5m</c>, <c>1h</c>, <c>1d</c> or seconds; 1 minute by default).</summary>
    public static MetricWindow Window(string? from, string? to, string? step, DateTimeOffset now, MetricsOptions options)
    {
        var errors = new Dictionary<string, string[]>();
        var until = Time(to, "to", errors) ?? now;
        var since = Time(from, "from", errors) ?? until - DefaultPeriod;
        var width = Step(step, errors) ?? TimeSpan.FromMinutes(1);
        if (!errors.ContainsKey("from") && !errors.ContainsKey("to"))
        {
            if (since >= until)
            {
                errors["from"] = ["must be before to"];
            }
            else if (until - since > LongestPeriod)
            {
                errors["from"] = [$"must be at most {LongestPeriod.TotalDays:0} days before to"];
            }
            else if (!errors.ContainsKey("step") && (until - since) / width > MaxPoints)
            {
                errors["step"] = [$"is too small for the period: at most {MaxPoints} points (use at least {Math.Ceiling((until - since).TotalSeconds / MaxPoints):0}s)"];
            }
        }

        if (errors.Count > 0)
        {
            throw Problems.Validation(errors);
        }

        return new MetricWindow(since, until, width, MetricResolution.For(width, since, now, options));
    }

    private static MetricSeries<T> Series<T>(Guid id, MetricWindow window, IEnumerable<T> points) =>
        new(id, window.From, window.To, (int)window.Step.TotalSeconds, window.Resolution.Name, points.ToList());

    private static DateTimeOffset? Time(string? value, string field, Dictionary<string, string[]> errors)
    {
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }

        if (DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time))
        {
            return time;
        }

        errors[field] = ["must be an ISO 8601 time, e.g. 2026-11-22T04:00:00Z"];
        return null;
    }

    private static TimeSpan? Step(string? value, Dictionary<string, string[]> errors)
    {
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }

        var match = StepPattern().Match(value);
        var seconds = match.Success
            ? long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) * match.Groups[2].Value switch { "m" => 60, "h" => 3600, "d" => 86_400, _ => 1 }
            : 0;
        if (seconds is < 1 or > 86_400)
        {
            errors["step"] = ["must be a duration from 1s to 1d, such as 10s, 5m, 1h or a number of seconds"];
            return null;
        }

        return TimeSpan.FromSeconds(seconds);
    }

    [GeneratedRegex("^([0-9]{1,6})(s|m|h|d)?$")]
    private static partial Regex StepPattern();
}
