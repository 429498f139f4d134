using Microsoft.AspNetCore.Http.HttpResults;
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
        caller.RequireMutate("machines");
        var ifMatch = ParseIfMatch(http.Request.Headers.IfMatch.ToString());
        var operationId = Guid.CreateVersion7();
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
                decision = machine.Decide(action, operationId, time.GetUtcNow());
            }
            catch (IllegalTransitionException illegal)
            {
                throw new ProblemException(ProblemTypes.IllegalTransition, StatusCodes.Status409Conflict, "The machine's state does not allow that.", illegal.Message,
                    new Dictionary<string, object?> { ["state"] = illegal.State, ["action"] = illegal.Action });
            }

            return new Decision([new StreamAppend(Machine.StreamOf(machineId), loaded.ExpectedVersion, [decision])],
                new EventMetadata(RequestCorrelation.Of(http), TenantId: machine.TenantId.ToString(), Actor: caller.Subject));
        }, cancellationToken);
        return TypedResults.Accepted($"/api/v1/operations/{operationId}", new MachineAccepted(machineId, operationId));
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
