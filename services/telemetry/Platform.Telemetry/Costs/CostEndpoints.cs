using System.Globalization;
using Microsoft.AspNetCore.Http.HttpResults;
using Platform.Hosting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;
using Platform.Telemetry.Machines;

namespace Platform.Telemetry.Costs;

/// <summary>One machine's cost: per hour while it runs (its shape at its driver's price), and accrued over the hours it ran in the period.</summary>
public sealed record MachineCost(
    Guid MachineId, string Name, string Kind, string Driver, string State, int Vcpus, int MemoryMiB, int DiskMiB, decimal CostPerHour, double RunningHours, decimal AccruedCost);

/// <summary>
/// A tenant's costs over a period: <see cref="CostPerHour"/> of what runs now and <see cref="AccruedCost"/> over every machine,
/// with the machines themselves paged.
/// </summary>
public sealed record TenantCosts(
    Guid TenantId, DateTimeOffset From, DateTimeOffset To, string Currency, decimal CostPerHour, decimal AccruedCost, IReadOnlyList<MachineCost> Items, string? NextCursor);

/// <summary><c>GET /api/v1/costs?from=&amp;to=</c>: the caller's tenant's machines, what they cost per hour and what they cost in the period.</summary>
public static class CostEndpoints
{
    public static void MapCosts(this IEndpointRouteBuilder app) => app.MapGet("/api/v1/costs", ListAsync);

    private static async Task<Ok<TenantCosts>> ListAsync(
        string? from, string? to, int? limit, string? cursor, Caller caller, MachineLedger ledger, PriceTable prices, TimeProvider time, CancellationToken cancellationToken)
    {
        var tenantId = caller.TenantId ?? throw Problems.Forbidden("Costs are a tenant's: act as one of its users or API keys.");
        var (pageSize, after) = Paging.Read(limit, cursor);
        var now = time.GetUtcNow();
        var errors = new Dictionary<string, string[]>();
        var until = Time(to, "to", errors) ?? now;
        var since = Time(from, "from", errors) ?? new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero);
        if (errors.Count == 0 && since >= until)
        {
            errors["from"] = ["must be before to"];
        }

        if (errors.Count > 0)
        {
            throw Problems.Validation(errors);
        }

        var machines = (await ledger.RunTimesAsync(tenantId, since, until, now, cancellationToken)).Select(run =>
        {
            var perHour = prices.For(run.Machine.Driver).PerHour(run.Machine.Shape);
            return new MachineCost(run.Machine.MachineId, run.Machine.Name, run.Machine.Kind, run.Machine.Driver, run.Machine.State,
                run.Machine.Shape.Vcpus, run.Machine.Shape.MemoryMiB, run.Machine.Shape.DiskMiB, perHour,
                Math.Round(run.Running.TotalHours, 6), Math.Round(perHour * (decimal)run.Running.TotalHours, 6));
        }).ToList();
        var page = Paging.Of(machines.Where(m => m.MachineId.CompareTo(after) > 0).Take(pageSize + 1).ToList(), pageSize, m => m.MachineId);
        return TypedResults.Ok(new TenantCosts(tenantId, since, until, prices.Currency,
            machines.Where(m => m.State == "running").Sum(m => m.CostPerHour), machines.Sum(m => m.AccruedCost), page.Items, page.NextCursor));
    }

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
}
