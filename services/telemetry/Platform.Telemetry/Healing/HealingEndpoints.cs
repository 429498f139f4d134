using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;
using Platform.Contracts.Telemetry;
using Platform.EventSourcing;
using Platform.Hosting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;

namespace Platform.Telemetry.Healing;

/// <summary>A manual heal: of <paramref name="MachineId"/>, by <paramref name="Action"/> (a <see cref="HealingActions"/> value; the one due, or start, when omitted).</summary>
public sealed record HealNowRequest(Guid? MachineId, string? Action = null);

/// <summary>The tenant's healing policy, what the watchdog does with each machine, and a manual trigger.</summary>
public static class HealingEndpoints
{
    public static void MapHealing(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/v1/healing/policy", async Task<Ok<HealingPolicy>> (Caller caller, HealingStore healing, CancellationToken ct) =>
            TypedResults.Ok(await healing.PolicyAsync(TenantOf(caller), ct)));
        app.MapPut("/api/v1/healing/policy", SetPolicyAsync);
        app.MapGet("/api/v1/healing/machines", async Task<Ok<Page<HealingState>>> (Caller caller, HealingStore healing, CancellationToken ct) =>
            TypedResults.Ok(new Page<HealingState>(await healing.ListAsync(caller.SeesAllTenants ? null : TenantOf(caller), ct), null)));
        app.MapPost("/api/v1/automation/healing/execute", HealNowAsync);
    }

    private static async Task<Ok<HealingPolicy>> SetPolicyAsync(HealingPolicy? policy, Caller caller, HttpContext http, EventStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        var tenantId = TenantOf(caller);
        caller.RequireMutate("healing settings");
        var errors = new Dictionary<string, string[]>();
        if (policy is null)
        {
            throw Problems.Invalid("body", "must name every setting of the policy");
        }

        if (policy.MaxAttempts is < 0 or > 100)
        {
            errors["maxAttempts"] = ["must be between 0 and 100"];
        }

        if (policy.InitialBackoffSeconds is < 0 or > 3600 || double.IsNaN(policy.InitialBackoffSeconds))
        {
            errors["initialBackoffSeconds"] = ["must be between 0 and 3600"];
        }

        if (policy.MaxBackoffSeconds < policy.InitialBackoffSeconds || policy.MaxBackoffSeconds > 86_400 || double.IsNaN(policy.MaxBackoffSeconds))
        {
            errors["maxBackoffSeconds"] = ["must be at least initialBackoffSeconds and at most 86400"];
        }

        if (policy.ResetAfterSeconds is < 0 or > 30 * 86_400 || double.IsNaN(policy.ResetAfterSeconds))
        {
            errors["resetAfterSeconds"] = ["must be between 0 and 2592000"];
        }

        if (errors.Count > 0)
        {
            throw Problems.Validation(errors);
        }

        await store.AppendAsync(HealingStore.PolicyStreamOf(tenantId), ExpectedVersion.Any, [new HealingPolicySet(tenantId, policy, time.GetUtcNow())],
            new EventMetadata(RequestCorrelation.Of(http), TenantId: tenantId.ToString(), Actor: caller.Subject), cancellationToken);
        return TypedResults.Ok(policy);
    }

    /// <summary>Schedules the action on the machine now, whatever its count of attempts (an operator's decision, audited as such).</summary>
    private static async Task<Accepted> HealNowAsync(HealNowRequest? request, Caller caller, HttpContext http, HealingStore healing, EventStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        caller.RequireMutate("healing settings");
        if (request?.MachineId is not { } machineId)
        {
            throw Problems.Invalid("machineId", "is required");
        }

        if (request.Action is { } asked && !HealingActions.All.Contains(asked))
        {
            throw Problems.Invalid("action", $"must be one of {string.Join(", ", HealingActions.All)}");
        }

        await using var session = await store.BeginSessionAsync(cancellationToken);
        var state = await healing.FindAsync(session.Connection, session.Transaction, machineId, cancellationToken);
        if (state is null || !(caller.SeesAllTenants || state.TenantId == caller.TenantId))
        {
            throw Problems.NotFound("machine");
        }

        var now = time.GetUtcNow();
        var attempt = state.Attempts + 1;
        var action = request.Action ?? state.Action;
        session.Append($"healing-{machineId}", ExpectedVersion.Any, [new HealingRequested(machineId, state.TenantId, attempt, $"requested by {caller.Subject}", now, action)],
            new EventMetadata(RequestCorrelation.Of(http), TenantId: state.TenantId.ToString(), Actor: caller.Subject));
        await healing.SaveAsync(session.Connection, session.Transaction, state with { Attempts = attempt, DueAt = now, Abandoned = false, Action = action }, cancellationToken);
        await session.CommitAsync(cancellationToken);
        return TypedResults.Accepted((string?)null);
    }

    private static Guid TenantOf(Caller caller) =>
        caller.TenantId ?? throw Problems.Forbidden("Healing policies are a tenant's: act as one of its users or API keys.");
}
