using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http.HttpResults;
using Platform.Contracts.Provisioning;
using Platform.EventSourcing;
using Platform.Hosting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;
using Platform.Provisioning.Machines;

namespace Platform.Provisioning.Snapshots;

/// <summary>The body of <c>POST /api/v1/machines/{id}/snapshots</c>: an optional name.</summary>
public sealed record CreateSnapshotRequest(string? Name);

/// <summary>The body of <c>POST /api/v1/machines/{id}/fork</c>: how many machines to make, 1 to 100.</summary>
public sealed record ForkRequest(int? Count);

/// <summary>
/// Snapshots of machines (<c>POST /machines/{id}/snapshots</c>), forks (<c>POST /machines/{id}/fork</c>: a snapshot and the
/// machines made from it, as one operation), and the snapshots themselves (<c>GET</c>, <c>DELETE /snapshots/{id}</c>).
/// </summary>
public static partial class SnapshotEndpoints
{
    public const int MaxForks = 100;

    public static void MapSnapshots(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/v1/machines/{machineId:guid}/snapshots", CreateAsync);
        app.MapPost("/api/v1/machines/{machineId:guid}/fork", ForkAsync);
        var snapshots = app.MapGroup("/api/v1/snapshots");
        snapshots.MapGet("", ListAsync);
        snapshots.MapGet("/{snapshotId:guid}", async (Guid snapshotId, Caller caller, SnapshotReader reader, CancellationToken ct) =>
        {
            var (snapshot, version) = await reader.GetAsync(snapshotId, caller, ct);
            return TypedResults.Ok(SnapshotView.Of(snapshot, version));
        });
        snapshots.MapDelete("/{snapshotId:guid}", DeleteAsync);
    }

    private static async Task<Accepted<SnapshotView>> CreateAsync(
        Guid machineId, CreateSnapshotRequest? request, Caller caller, HttpContext http, MachineReader machines, EventStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        caller.RequireMutate("snapshots");
        if (request?.Name is { } name && !DnsLabel().IsMatch(name))
        {
            throw Problems.Invalid("name", "must be a DNS label: 1–63 lowercase letters, digits and hyphens, not starting or ending with a hyphen");
        }

        var machine = await SnapshottableAsync(machineId, caller, machines, cancellationToken);
        var snapshotId = Guid.CreateVersion7();
        var requested = Requested(machine, snapshotId, request?.Name ?? $"{Trimmed(machine.Name)}-{snapshotId.ToString("N")[^6..]}", null, time.GetUtcNow());
        await store.AppendAsync(Snapshot.StreamOf(snapshotId), ExpectedVersion.NoStream, [requested], Metadata(http, caller, machine), cancellationToken);
        return TypedResults.Accepted($"/api/v1/snapshots/{snapshotId}", SnapshotView.Of(Snapshot.Create(requested), 1));
    }

    /// <summary>
    /// One snapshot of the machine, then <c>count</c> machines made from it, each with its own identity and address, as one
    /// operation; its result (<c>GET /api/v1/operations/{id}</c>) names each machine and how its creation went.
    /// </summary>
    private static async Task<Accepted<ForkAccepted>> ForkAsync(
        Guid machineId, ForkRequest? request, Caller caller, HttpContext http, MachineReader machines, EventStore store, QuotaCheck quota, TimeProvider time,
        CancellationToken cancellationToken)
    {
        caller.RequireMutate("machines");
        if (request?.Count is not (>= 1 and <= MaxForks))
        {
            throw Problems.Invalid("count", $"is required, between 1 and {MaxForks}");
        }

        var machine = await SnapshottableAsync(machineId, caller, machines, cancellationToken);
        // The snapshot and every fork, as their flows will reserve them.
        await quota.EnsureFitsAsync(machine.TenantId, QuotaCheck.Of(machine.Shape, machine.ExitNodeId is not null, request.Count.Value)
            with { Snapshots = 1 }, cancellationToken);
        var snapshotId = Guid.CreateVersion7();
        var operationId = Guid.CreateVersion7();
        var fork = new SnapshotFork(operationId, Enumerable.Range(0, request.Count.Value).Select(_ => Guid.CreateVersion7()).ToList());
        var requested = Requested(machine, snapshotId, $"{Trimmed(machine.Name)}-fork-{operationId.ToString("N")[^6..]}", fork, time.GetUtcNow());
        await store.AppendAsync(Snapshot.StreamOf(snapshotId), ExpectedVersion.NoStream, [requested], Metadata(http, caller, machine), cancellationToken);
        return TypedResults.Accepted($"/api/v1/operations/{operationId}", new ForkAccepted(operationId, snapshotId, fork.MachineIds));
    }

    private static async Task<Ok<Page<SnapshotView>>> ListAsync(
        Caller caller, SnapshotReader reader, Guid? machineId, string? state, int? limit, string? cursor, CancellationToken cancellationToken)
    {
        if (state is not null && !SnapshotStates.All.Contains(state))
        {
            throw Problems.Invalid("state", $"must be one of {string.Join(", ", SnapshotStates.All)}");
        }

        var (pageSize, after) = Paging.Read(limit, cursor);
        return TypedResults.Ok(await reader.ListAsync(caller, machineId, state, pageSize, after, cancellationToken));
    }

    /// <summary>
    /// Removes a ready snapshot from its host and gives its quota back (202, then <c>deleted</c>); a failed one is deleted at
    /// once. Refused while machines made from it are not destroyed: they start from it.
    /// </summary>
    private static async Task<Accepted<SnapshotView>> DeleteAsync(
        Guid snapshotId, Caller caller, HttpContext http, SnapshotReader reader, IEventStreams streams, TimeProvider time, CancellationToken cancellationToken)
    {
        caller.RequireMutate("snapshots");
        await reader.GetAsync(snapshotId, caller, cancellationToken);
        if (await reader.MachinesMadeFromAsync(snapshotId, cancellationToken) is { Count: > 0 } users)
        {
            throw new ProblemException(ProblemTypes.SnapshotInUse, StatusCodes.Status409Conflict, "Machines made from the snapshot still start from it.",
                $"Destroy {string.Join(", ", users)} first.", new Dictionary<string, object?> { ["machines"] = users });
        }

        (Snapshot Snapshot, long Version) deleted = default;
        await streams.DecideAsync<Snapshot>(Snapshot.StreamOf(snapshotId), Snapshot.Evolve, loaded =>
        {
            var snapshot = loaded.State!;
            object decision;
            try
            {
                decision = snapshot.Delete(time.GetUtcNow());
            }
            catch (SnapshotStateException refused)
            {
                throw new ProblemException(ProblemTypes.IllegalTransition, StatusCodes.Status409Conflict, "The snapshot's state does not allow that.", refused.Message,
                    new Dictionary<string, object?> { ["state"] = snapshot.State });
            }

            deleted = (snapshot.Apply(decision), loaded.Version + 1);
            return new Decision([new StreamAppend(Snapshot.StreamOf(snapshotId), loaded.ExpectedVersion, [decision])],
                new EventMetadata(RequestCorrelation.Of(http), TenantId: snapshot.TenantId.ToString(), Actor: caller.Subject));
        }, cancellationToken);
        return TypedResults.Accepted($"/api/v1/snapshots/{snapshotId}", SnapshotView.Of(deleted.Snapshot!, deleted.Version));
    }

    /// <summary>The caller's machine, when it can be snapshotted now: running or paused, on a host (not a cloud's instance).</summary>
    private static async Task<Machine> SnapshottableAsync(Guid machineId, Caller caller, MachineReader machines, CancellationToken cancellationToken)
    {
        var machine = (await machines.FindStateAsync(machineId, caller, cancellationToken) ?? throw Problems.NotFound("machine")).Machine;
        if (machine.Kind == MachineKinds.Cloud)
        {
            throw new ProblemException(ProblemTypes.IllegalTransition, StatusCodes.Status409Conflict, "The machine cannot be snapshotted.",
                $"A {machine.Driver} machine is a cloud's instance: snapshot it with its cloud.", new Dictionary<string, object?> { ["state"] = machine.State });
        }

        if (machine.State is not (MachineStates.Running or MachineStates.Paused))
        {
            throw new ProblemException(ProblemTypes.IllegalTransition, StatusCodes.Status409Conflict, "The machine's state does not allow that.",
                $"A machine that is {machine.State} cannot be snapshotted: only a running or paused one.", new Dictionary<string, object?> { ["state"] = machine.State });
        }

        return machine;
    }

    private static SnapshotRequested Requested(Machine machine, Guid snapshotId, string name, SnapshotFork? fork, DateTimeOffset now) => new(
        snapshotId, machine.TenantId, name, machine.Id, machine.Name, machine.HostId, machine.Kind, machine.Driver, machine.Template, machine.Shape, machine.Command,
        machine.Labels, fork, now);

    private static EventMetadata Metadata(HttpContext http, Caller caller, Machine machine) =>
        new(RequestCorrelation.Of(http), TenantId: machine.TenantId.ToString(), Actor: caller.Subject);

    /// <summary>A machine's name shortened so that a suffix still makes a DNS label.</summary>
    internal static string Trimmed(string name) => name.Length > 40 ? name[..40].TrimEnd('-') : name;

    [GeneratedRegex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    private static partial Regex DnsLabel();
}
