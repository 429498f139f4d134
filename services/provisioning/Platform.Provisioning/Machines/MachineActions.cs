using Microsoft.AspNetCore.Http.HttpResults;
using Platform.Contracts.Provisioning;
using Platform.EventSourcing;
using Platform.Hosting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;

namespace Platform.Provisioning.Machines;

/// <summary>
/// A user's request on a machine (start, stop, pause, resume, restart, recreate, destroy): decided on the machine's stream and
/// appended with its expected version. With <c>If-Match</c> that version is the caller's (a stale one is 412);
/// without, a lost race is decided again on fresh state.
/// </summary>
public sealed class MachineActions(IEventStreams streams, MachineReader reader, TimeProvider time)
{
    public async Task<Accepted<MachineAccepted>> RequestAsync(Guid machineId, string action, Caller caller, HttpContext http, CancellationToken cancellationToken)
    {
        var operationId = Guid.CreateVersion7();
        await DecideAsCallerAsync(machineId, caller, http, machine => machine.Decide(action, operationId, time.GetUtcNow()), cancellationToken);
        return TypedResults.Accepted($"/api/v1/operations/{operationId}", new MachineAccepted(machineId, operationId));
    }

    /// <summary><c>PATCH …/lifecycle</c>: replaces the machine's time-to-live and idle policy (absent fields clear them); answers the machine.</summary>
    public async Task<Ok<MachineView>> SetLifecycleAsync(Guid machineId, LifecycleRequest? request, Caller caller, HttpContext http, CancellationToken cancellationToken)
    {
        if (request is null)
        {
            throw Problems.Invalid("body", "must give ttlSeconds, idle or both (null clears one)");
        }

        var problems = MachineRequestRules.LifecycleProblems(request.TtlSeconds, request.Idle, null).GroupBy(p => p.Field).ToDictionary(g => g.Key, g => g.Select(p => p.Problem).ToArray());
        if (problems.Count > 0)
        {
            throw Problems.Validation(problems);
        }

        var policy = new MachineLifecyclePolicy(request.TtlSeconds, request.Idle);
        return await ChangeAsync(machineId, caller, http, machine =>
        {
            if (policy.Idle is { Action: "pause" } && !machine.Pausable)
            {
                throw Problems.Invalid("idle", $"a {machine.Driver} machine cannot be paused: its idle action is stop or destroy");
            }

            return machine.SetLifecycle(policy, time.GetUtcNow());
        }, cancellationToken);
    }

    /// <summary><c>POST …/keepalive</c>: the machine is still wanted; its time-to-live starts again and its idleness too. Answers the machine.</summary>
    public Task<Ok<MachineView>> KeepAliveAsync(Guid machineId, Caller caller, HttpContext http, CancellationToken cancellationToken) =>
        ChangeAsync(machineId, caller, http, machine => machine.KeepAlive(time.GetUtcNow()), cancellationToken);

    /// <summary>A change of the machine decided as the caller asks, answered with the machine as it left it (and its ETag).</summary>
    private async Task<Ok<MachineView>> ChangeAsync(Guid machineId, Caller caller, HttpContext http, Func<Machine, object> decide, CancellationToken cancellationToken)
    {
        var (changed, version) = await DecideAsCallerAsync(machineId, caller, http, decide, cancellationToken);
        var view = MachineView.Of(changed, version);
        http.Response.Headers.ETag = view.ETag;
        return TypedResults.Ok(view);
    }

    /// <summary>
    /// One change the caller asks of a machine of theirs, decided by the machine and appended with its version (the caller's
    /// with If-Match); answers the machine as the change left it, and its version.
    /// </summary>
    private async Task<(Machine Machine, long Version)> DecideAsCallerAsync(
        Guid machineId, Caller caller, HttpContext http, Func<Machine, object> decide, CancellationToken cancellationToken)
    {
        caller.RequireMutate("machines");
        var ifMatch = ParseIfMatch(http.Request.Headers.IfMatch.ToString());
        (Machine Machine, long Version) changed = default;
        await streams.DecideAsync<Machine>(Machine.StreamOf(machineId), Machine.Evolve, loaded =>
        {
            if (loaded.State is not { } machine || !(caller.SeesAllTenants || caller.TenantId == machine.TenantId))
            {
                throw Problems.NotFound("machine");
            }

            // A race lost to another change is decided again, and then the caller's version is stale.
            if (ifMatch is { } expected && expected != loaded.Version)
            {
                throw Precondition(loaded.Version);
            }

            object decision;
            try
            {
                decision = decide(machine);
            }
            catch (IllegalTransitionException illegal)
            {
                throw new ProblemException(ProblemTypes.IllegalTransition, StatusCodes.Status409Conflict, "The machine's state does not allow that.", illegal.Message,
                    new Dictionary<string, object?> { ["state"] = illegal.State, ["action"] = illegal.Action });
            }

            changed = (machine.Apply(decision), loaded.Version + 1);
            return new Decision([new StreamAppend(Machine.StreamOf(machineId), loaded.ExpectedVersion, [decision])],
                new EventMetadata(RequestCorrelation.Of(http), TenantId: machine.TenantId.ToString(), Actor: caller.Subject));
        }, cancellationToken);
        return changed;
    }

    /// <summary>
    /// A request that comes over the bus from another service: decided like a user's, recorded with the
    /// sender as actor. False when the machine is unknown or its state does not allow it (nothing changes);
    /// a repeat of an operation recorded already, pending or ended, changes nothing either.
    /// </summary>
    public async Task<bool> RequestFromServiceAsync(Guid machineId, Guid tenantId, string action, Guid operationId, string actor, Guid? correlationId, CancellationToken cancellationToken)
    {
        if (await reader.OperationExistsAsync(operationId, cancellationToken))
        {
            return false;
        }

        var recorded = await streams.DecideAsync<Machine>(Machine.StreamOf(machineId), Machine.Evolve, machine =>
        {
            if (machine is null || machine.TenantId != tenantId)
            {
                return [];
            }

            try
            {
                return [machine.Decide(action, operationId, time.GetUtcNow())];
            }
            catch (IllegalTransitionException)
            {
                return [];
            }
        }, new EventMetadata(correlationId, TenantId: tenantId.ToString(), Actor: actor), cancellationToken);
        return recorded.Count > 0;
    }

    private static long? ParseIfMatch(string header)
    {
        if (header.Length == 0 || header == "*")
        {
            return null;
        }

        var text = header.Trim();
        if (text.StartsWith("W/", StringComparison.Ordinal))
        {
            text = text[2..];
        }

        return long.TryParse(text.Trim('"'), out var version) && version > 0
            ? version
            : throw new ProblemException(ProblemTypes.PreconditionFailed, StatusCodes.Status412PreconditionFailed, "The If-Match header is not an ETag this API gave.",
                "If-Match takes the ETag of GET /api/v1/machines/{id}, such as \"3\".");
    }

    private static ProblemException Precondition(long current) =>
        new(ProblemTypes.PreconditionFailed, StatusCodes.Status412PreconditionFailed, "The machine changed since you read it.",
            $"The machine is at version {current}; read it again and retry with If-Match: \"{current}\".", new Dictionary<string, object?> { ["currentVersion"] = current });
}
