using Microsoft.AspNetCore.Http.HttpResults;
using Platform.Contracts.Tenancy;
using Platform.EventSourcing;
using Platform.Hosting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;

namespace Platform.Tenancy.Guardrails;

/// <summary>The host guardrails (platform-admin only): one stream, <c>host-guardrails</c>; each change is published for placement.</summary>
public static class GuardrailEndpoints
{
    public const string Stream = "host-guardrails";

    public static void MapGuardrails(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/v1/governance/guardrails", GetAsync);
        app.MapPut("/api/v1/governance/guardrails", SetAsync);
    }

    public static HostGuardrails Defaults(IConfiguration configuration) =>
        ConfigurationRecords.Read(configuration.GetSection("Platform:Tenancy:DefaultGuardrails"), HostGuardrails.Default);

    private static async Task<Ok<HostGuardrails>> GetAsync(Caller caller, EventStore store, IConfiguration configuration, CancellationToken cancellationToken)
    {
        RequirePlatformAdmin(caller);
        return TypedResults.Ok(await CurrentAsync(store, configuration, cancellationToken));
    }

    private static async Task<Ok<HostGuardrails>> SetAsync(HostGuardrails? guardrails, Caller caller, HttpContext http, EventStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        RequirePlatformAdmin(caller);
        var errors = new Dictionary<string, string[]>();
        if (guardrails is null)
        {
            throw Problems.Invalid("body", "must name every guardrail");
        }

        if (guardrails.ReservedHostMemoryMiB is < 0 or > 1024 * 1024)
        {
            errors["reservedHostMemoryMiB"] = ["must be between 0 and 1048576"];
        }

        if (guardrails.MaxMachinesPerHost is < 1 or > 10_000)
        {
            errors["maxMachinesPerHost"] = ["must be between 1 and 10000"];
        }

        if (guardrails.MaxVcpuOvercommit is < 1.0 or > 64.0 || double.IsNaN(guardrails.MaxVcpuOvercommit))
        {
            errors["maxVcpuOvercommit"] = ["must be between 1.0 and 64.0"];
        }

        if (guardrails.ReservedHostDiskMiB is < 0 or > 1024 * 1024 * 1024)
        {
            errors["reservedHostDiskMiB"] = ["must be between 0 and 1073741824"];
        }

        if (errors.Count > 0)
        {
            throw Problems.Validation(errors);
        }

        await store.AppendAsync(Stream, ExpectedVersion.Any, [new HostGuardrailsSet(guardrails, time.GetUtcNow())], new EventMetadata(RequestCorrelation.Of(http), Actor: caller.Subject), cancellationToken);
        return TypedResults.Ok(guardrails);
    }

    private static async Task<HostGuardrails> CurrentAsync(EventStore store, IConfiguration configuration, CancellationToken cancellationToken)
    {
        var loaded = await store.LoadAsync<HostGuardrails>(Stream, (state, @event) => @event is HostGuardrailsSet set ? set.Guardrails : state!, cancellationToken);
        return loaded.State ?? Defaults(configuration);
    }

    private static void RequirePlatformAdmin(Caller caller)
    {
        if (!caller.IsPlatformAdmin)
        {
            throw Problems.Forbidden("Only a platform-admin reads or sets host guardrails.");
        }
    }
}
