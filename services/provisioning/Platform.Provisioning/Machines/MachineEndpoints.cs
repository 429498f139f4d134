using System.Globalization;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Platform.EventSourcing;
using Platform.Hosting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;

namespace Platform.Provisioning.Machines;

public sealed record MachineEventView(long Version, string Type, object Data, DateTimeOffset RecordedAt, string? Actor, Guid? CorrelationId);

/// <summary>The machines API: create (202 + an operation), read, list, act (start, stop, pause, resume, restart, recreate, destroy), wait and history.</summary>
public static class MachineEndpoints
{
    public static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan PollFallback = TimeSpan.FromSeconds(1);

    public static void MapMachines(this IEndpointRouteBuilder app)
    {
        var machines = app.MapGroup("/api/v1/machines");
        machines.MapPost("", CreateAsync);
        machines.MapGet("", ListAsync);
        machines.MapGet("/{machineId:guid}", GetAsync);
        machines.MapPost("/{machineId:guid}/start", (Guid machineId, Caller caller, HttpContext http, MachineActions actions, CancellationToken ct) => actions.RequestAsync(machineId, "start", caller, http, ct));
        machines.MapPost("/{machineId:guid}/stop", (Guid machineId, Caller caller, HttpContext http, MachineActions actions, CancellationToken ct) => actions.RequestAsync(machineId, "stop", caller, http, ct));
        machines.MapPost("/{machineId:guid}/pause", (Guid machineId, Caller caller, HttpContext http, MachineActions actions, CancellationToken ct) => actions.RequestAsync(machineId, "pause", caller, http, ct));
        machines.MapPost("/{machineId:guid}/resume", (Guid machineId, Caller caller, HttpContext http, MachineActions actions, CancellationToken ct) => actions.RequestAsync(machineId, "resume", caller, http, ct));
        machines.MapPost("/{machineId:guid}/restart", (Guid machineId, Caller caller, HttpContext http, MachineActions actions, CancellationToken ct) => actions.RequestAsync(machineId, "restart", caller, http, ct));
        machines.MapPost("/{machineId:guid}/recreate", (Guid machineId, Caller caller, HttpContext http, MachineActions actions, CancellationToken ct) => actions.RequestAsync(machineId, "recreate", caller, http, ct));
        machines.MapDelete("/{machineId:guid}", (Guid machineId, Caller caller, HttpContext http, MachineActions actions, CancellationToken ct) => actions.RequestAsync(machineId, "destroy", caller, http, ct));
        machines.MapPatch("/{machineId:guid}/lifecycle", (Guid machineId, LifecycleRequest? request, Caller caller, HttpContext http, MachineActions actions, CancellationToken ct) =>
            actions.SetLifecycleAsync(machineId, request, caller, http, ct));
        machines.MapPost("/{machineId:guid}/keepalive", (Guid machineId, Caller caller, HttpContext http, MachineActions actions, CancellationToken ct) =>
            actions.KeepAliveAsync(machineId, caller, http, ct));
        machines.MapGet("/{machineId:guid}/wait", WaitAsync);
        machines.MapGet("/{machineId:guid}/events", EventsAsync);
        app.MapGet("/api/v1/operations/{operationId:guid}", async (Guid operationId, Caller caller, MachineReader machines, Snapshots.SnapshotReader snapshots, CancellationToken ct) =>
            TypedResults.Ok(await machines.FindOperationAsync(operationId, caller, ct) ?? await snapshots.FindForkOperationAsync(operationId, caller, ct) ?? throw Problems.NotFound("operation")));
    }

    private static async Task<Accepted<MachineAccepted>> CreateAsync(
        CreateMachineRequest? request, Caller caller, HttpContext http, MachineCreation creation,
        [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey, CancellationToken cancellationToken)
    {
        caller.RequireMutate("machines");
        if (request is null)
        {
            throw Problems.Invalid("body", "must describe the machine");
        }

        var accepted = await creation.CreateAsync(request, caller, idempotencyKey, RequestCorrelation.Of(http), cancellationToken);
        return TypedResults.Accepted($"/api/v1/operations/{accepted.OperationId}", accepted);
    }

    /// <summary>
    /// The machine now, or with <c>?version=</c> or <c>?at=</c> as it stood at that version of its stream or at that time,
    /// folded from its events (a destroyed machine included). Only the present has an ETag: If-Match acts on it alone.
    /// </summary>
    private static async Task<Ok<MachineView>> GetAsync(
        Guid machineId, long? version, string? at, Caller caller, HttpContext http, MachineReader reader, EventStore store, CancellationToken cancellationToken)
    {
        if (AsOf.Read(version, at, "machine") is not { } asOf)
        {
            var machine = await reader.GetAsync(machineId, caller, cancellationToken);
            http.Response.Headers.ETag = machine.ETag;
            return TypedResults.Ok(machine);
        }

        var then = await store.LoadAsOfAsync<Machine>(Machine.StreamOf(machineId), Machine.Evolve, asOf.Version, asOf.At, cancellationToken);
        return then.State is { } state && caller.CanSee(state.TenantId)
            ? TypedResults.Ok(MachineView.Of(state, then.Version))
            : throw Problems.NotFound("machine");
    }

    private static async Task<Ok<Page<MachineView>>> ListAsync(
        Caller caller, MachineReader reader, string? state, [FromQuery(Name = "label")] string[]? labels, int? limit, string? cursor, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        if (state is not null && !MachineStates.All.Contains(state))
        {
            errors["state"] = [$"must be one of {string.Join(", ", MachineStates.All)}"];
        }

        var wanted = new Dictionary<string, string>();
        foreach (var label in labels ?? [])
        {
            if (label.Split('=', 2) is [{ Length: > 0 } key, var value])
            {
                wanted[key] = value;
            }
            else
            {
                errors["label"] = ["each label filter is key=value"];
            }
        }

        if (errors.Count > 0)
        {
            throw Problems.Validation(errors);
        }

        var (pageSize, after) = Paging.Read(limit, cursor);
        return TypedResults.Ok(await reader.ListAsync(caller, state, wanted, pageSize, after, cancellationToken));
    }

    /// <summary>Answers when the machine is in <paramref name="state"/>; 408 when the timeout passes first, 409 when it failed or is gone.</summary>
    private static async Task<Ok<MachineView>> WaitAsync(
        Guid machineId, string? state, string? timeout, Caller caller, HttpContext http, MachineReader reader, MachineWatch watch, TimeProvider time, CancellationToken cancellationToken)
    {
        var target = state ?? MachineStates.Running;
        var errors = new Dictionary<string, string[]>();
        if (!MachineStates.All.Contains(target))
        {
            errors["state"] = [$"must be one of {string.Join(", ", MachineStates.All)}"];
        }

        var limit = ParseTimeout(timeout);
        if (limit is null)
        {
            errors["timeout"] = [$"must be a duration such as 30s, 500ms or 1m, at most {MaxWait.TotalSeconds:0}s"];
        }

        if (errors.Count > 0)
        {
            throw Problems.Validation(errors);
        }

        var deadline = time.GetUtcNow() + limit!.Value;
        while (true)
        {
            var changed = watch.NextChange(machineId);
            var machine = await reader.GetAsync(machineId, caller, cancellationToken);
            if (machine.State == target)
            {
                http.Response.Headers.ETag = machine.ETag;
                return TypedResults.Ok(machine);
            }

            if (machine.State is MachineStates.Destroyed or MachineStates.Failed && machine.PendingOperation is null)
            {
                throw new ProblemException(ProblemTypes.MachineFailed, StatusCodes.Status409Conflict, $"The machine is {machine.State} and will not become {target} by itself.",
                    machine.LastError is { } reason ? $"The machine is {machine.State}: {reason}" : $"The machine is {machine.State}.");
            }

            var remaining = deadline - time.GetUtcNow();
            if (remaining <= TimeSpan.Zero)
            {
                throw new ProblemException(ProblemTypes.RequestTimeout, StatusCodes.Status408RequestTimeout, "The machine did not reach the state in time.",
                    $"The machine is {machine.State}, not {target}, after {limit.Value.TotalSeconds:0.###}s.");
            }

            await Task.WhenAny(changed, Task.Delay(remaining < PollFallback ? remaining : PollFallback, cancellationToken));
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    private static async Task<Ok<IReadOnlyList<MachineEventView>>> EventsAsync(
        Guid machineId, long? after, Caller caller, MachineReader reader, EventStore store, CancellationToken cancellationToken)
    {
        await reader.GetAsync(machineId, caller, cancellationToken);
        if (after is < 0)
        {
            throw Problems.Invalid("after", "must be a stream version, 0 or more");
        }

        var events = await store.ReadStreamAsync(Machine.StreamOf(machineId), (after ?? 0) + 1, cancellationToken);
        return TypedResults.Ok<IReadOnlyList<MachineEventView>>(events
            .Where(e => e.Data is not IdempotencyKeyRecorded)
            .Select(e => new MachineEventView(e.StreamVersion, e.EventType, e.Data, e.RecordedAt, e.Metadata.Actor, e.Metadata.CorrelationId))
            .ToList());
    }

    /// <summary>Fly-style durations: <c>30s</c>, <c>500ms</c>, <c>1m</c>, or bare seconds; null when malformed or too long.</summary>
    public static TimeSpan? ParseTimeout(string? text)
    {
        if (text is null)
        {
            return TimeSpan.FromSeconds(30);
        }

        var (number, unit) = text.EndsWith("ms", StringComparison.Ordinal) ? (text[..^2], 1.0)
            : text.EndsWith('s') ? (text[..^1], 1000.0)
            : text.EndsWith('m') ? (text[..^1], 60_000.0)
            : (text, 1000.0);
        if (!double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var amount))
        {
            return null;
        }

        var duration = TimeSpan.FromMilliseconds(amount * unit);
        return duration <= MaxWait ? duration : null;
    }
}
