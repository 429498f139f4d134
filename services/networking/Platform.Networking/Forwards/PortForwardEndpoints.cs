using System.Security.Cryptography;
using System.Text;
using MassTransit;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Npgsql;
using Platform.Contracts.Networking;
using Platform.EventSourcing;
using Platform.Hosting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;

namespace Platform.Networking.Forwards;

public sealed record ForwardPortRequest(int? Port);

/// <summary>
/// A host port forwarded to a machine's port as the API shows it. <paramref name="Address"/>:<paramref name="HostPort"/>
/// reaches the machine once <paramref name="State"/> is <c>open</c> (any address of the host works; this is the one
/// its agent advertises); <paramref name="LastError"/> says why a <c>failed</c> one could not be opened.
/// </summary>
public sealed record PortForwardView(
    Guid Id,
    Guid MachineId,
    Guid HostId,
    int Port,
    string State,
    int? HostPort,
    string? Address,
    string? LastError,
    DateTimeOffset RequestedAt,
    DateTimeOffset? OpenedAt)
{
    public static PortForwardView Of(MachinePortForward forward) => new(forward.ForwardId, forward.MachineId, forward.HostId, forward.Port, forward.State,
        forward.HostPort, forward.HostAddress, forward.LastError, forward.RequestedAt ?? default, forward.OpenedAt);
}

/// <summary>
/// Port forwards of the caller's tenant's machines. Opening and closing one takes the machine's host, so both answer
/// <c>202</c> with the forward's <c>Location</c>, whose state shows when it is done. Another tenant's machine or forward
/// is not found.
/// </summary>
public static class PortForwardEndpoints
{
    private const string Columns = "forward_id, machine_id, host_id, port, state, host_port, host_address, last_error, requested_at, opened_at";

    public static void MapPortForwards(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/v1/machines/{machineId:guid}/ports", ForwardAsync);
        app.MapGet("/api/v1/machines/{machineId:guid}/ports", ListOfMachineAsync);
        app.MapGet("/api/v1/machines/{machineId:guid}/ports/{forwardId:guid}", GetAsync);
        app.MapDelete("/api/v1/machines/{machineId:guid}/ports/{forwardId:guid}", RemoveAsync);
        app.MapGet("/api/v1/port-forwards", ListAsync);
    }

    private static async Task<Accepted<PortForwardView>> ForwardAsync(
        Guid machineId, ForwardPortRequest? request, Caller caller, HttpContext http, MachineCopies machines, PortForwarding forwarding, ISendEndpointProvider send,
        NpgsqlDataSource dataSource, EventStore store, TimeProvider time, [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey, CancellationToken cancellationToken)
    {
        caller.RequireMutate("port forwards");
        if (request?.Port is not (>= 1 and <= 65535))
        {
            throw Problems.Invalid("port", "is required: the machine's TCP port, 1 to 65535");
        }

        var machine = await machines.FindAsync(machineId, TenantScope(caller), cancellationToken) ?? throw Problems.NotFound("machine");
        var forwardId = idempotencyKey is { Length: > 0 } key ? IdOf(machine.TenantId, machineId, key) : Guid.CreateVersion7();
        var command = new ForwardPort(forwardId, machineId, machine.TenantId, machine.HostId ?? Guid.Empty, machine.Address ?? "", machine.Gateway ?? "",
            machine.PrefixLength ?? 0, request.Port.Value);
        var (forward, refusal) = await forwarding.RequestAsync(command, machine, send,
            new EventMetadata(RequestCorrelation.Of(http), TenantId: machine.TenantId.ToString(), Actor: caller.Subject), cancellationToken);
        if (refusal is not null)
        {
            throw refusal.Status switch
            {
                StatusCodes.Status404NotFound => Problems.NotFound("machine"),
                StatusCodes.Status409Conflict => Problems.Conflict(refusal.Reason),
                _ => Problems.Invalid("port", refusal.Reason),
            };
        }

        // As stored (the row is written with the event); a repeated request shows the forward as it is now, removed included.
        var view = await FindAsync(dataSource, store, caller, machineId, forward!.ForwardId, cancellationToken)
            ?? new PortForwardView(forward.ForwardId, machineId, forward.HostId, forward.Port, forward.State, forward.HostPort, forward.HostAddress, forward.LastError, time.GetUtcNow(), null);
        return TypedResults.Accepted($"/api/v1/machines/{machineId}/ports/{forward.ForwardId}", view);
    }

    private static async Task<Ok<Page<PortForwardView>>> ListOfMachineAsync(
        Guid machineId, Caller caller, MachineCopies machines, NpgsqlDataSource dataSource, EventStore store, string? cursor, int? limit, CancellationToken cancellationToken)
    {
        _ = await machines.FindAsync(machineId, TenantScope(caller), cancellationToken) ?? throw Problems.NotFound("machine");
        return TypedResults.Ok(await PageAsync(dataSource, store, caller, machineId, cursor, limit, cancellationToken));
    }

    private static async Task<Ok<Page<PortForwardView>>> ListAsync(Caller caller, NpgsqlDataSource dataSource, EventStore store, string? cursor, int? limit, CancellationToken cancellationToken) =>
        TypedResults.Ok(await PageAsync(dataSource, store, caller, null, cursor, limit, cancellationToken));

    /// <summary>The forward now, or with <c>?version=</c> or <c>?at=</c> as it stood then (a removed forward included).</summary>
    private static async Task<Ok<PortForwardView>> GetAsync(
        Guid machineId, Guid forwardId, long? version, string? at, Caller caller, NpgsqlDataSource dataSource, EventStore store, CancellationToken cancellationToken)
    {
        if (AsOf.Read(version, at, "port forward") is { } asOf)
        {
            var then = await store.LoadAsOfAsync<MachinePortForward>(MachinePortForward.StreamOf(forwardId), MachinePortForward.Evolve, asOf.Version, asOf.At, cancellationToken);
            return then.State is { } past && past.MachineId == machineId && caller.CanSee(past.TenantId)
                ? TypedResults.Ok(PortForwardView.Of(past))
                : throw Problems.NotFound("port forward");
        }

        return TypedResults.Ok(await FindAsync(dataSource, store, caller, machineId, forwardId, cancellationToken) ?? throw Problems.NotFound("port forward"));
    }

    private static async Task<Accepted<PortForwardView>> RemoveAsync(
        Guid machineId, Guid forwardId, Caller caller, HttpContext http, PortForwarding forwarding, ISendEndpointProvider send, NpgsqlDataSource dataSource, EventStore store,
        CancellationToken cancellationToken)
    {
        caller.RequireMutate("port forwards");
        var forward = await FindAsync(dataSource, store, caller, machineId, forwardId, cancellationToken) ?? throw Problems.NotFound("port forward");
        var tenantId = caller.TenantId ?? await TenantOfAsync(dataSource, store, forwardId, cancellationToken);
        var removed = await forwarding.RemoveAsync(forwardId, tenantId, send,
            new EventMetadata(RequestCorrelation.Of(http), TenantId: tenantId.ToString(), Actor: caller.Subject), cancellationToken);
        return TypedResults.Accepted($"/api/v1/machines/{machineId}/ports/{forwardId}", forward with { State = removed?.State ?? PortForwardStates.Removed });
    }

    /// <summary>Null for a platform-admin outside any tenant: every tenant's machines.</summary>
    private static Guid? TenantScope(Caller caller) => caller.SeesAllTenants ? null : caller.TenantId ?? Guid.Empty;

    /// <summary>A forward visible to the caller, by the machine it belongs to and its id.</summary>
    private static async Task<PortForwardView?> FindAsync(NpgsqlDataSource dataSource, EventStore store, Caller caller, Guid machineId, Guid forwardId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            $"SELECT {Columns} FROM {store.Schema}.port_forwards WHERE forward_id = $1 AND machine_id = $2 AND ($3 OR tenant_id = $4)");
        command.Parameters.AddWithValue(forwardId);
        command.Parameters.AddWithValue(machineId);
        command.Parameters.AddWithValue(caller.SeesAllTenants);
        command.Parameters.AddWithValue(caller.TenantId ?? Guid.Empty);
        return (await ReadAsync(command, cancellationToken)).FirstOrDefault();
    }

    private static async Task<Guid> TenantOfAsync(NpgsqlDataSource dataSource, EventStore store, Guid forwardId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT tenant_id FROM {store.Schema}.port_forwards WHERE forward_id = $1");
        command.Parameters.AddWithValue(forwardId);
        return await command.ExecuteScalarAsync(cancellationToken) is Guid tenantId ? tenantId : throw Problems.NotFound("port forward");
    }

    private static async Task<Page<PortForwardView>> PageAsync(
        NpgsqlDataSource dataSource, EventStore store, Caller caller, Guid? machineId, string? cursor, int? limit, CancellationToken cancellationToken)
    {
        var (pageSize, after) = Paging.Read(limit, cursor);
        await using var command = dataSource.CreateCommand($"""
            SELECT {Columns} FROM {store.Schema}.port_forwards
            WHERE ($1 OR tenant_id = $2) AND ($3::uuid IS NULL OR machine_id = $3) AND forward_id > $4 ORDER BY forward_id LIMIT $5
            """);
        command.Parameters.AddWithValue(caller.SeesAllTenants);
        command.Parameters.AddWithValue(caller.TenantId ?? Guid.Empty);
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)machineId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Uuid });
        command.Parameters.AddWithValue(after);
        command.Parameters.AddWithValue(pageSize + 1);
        return Paging.Of(await ReadAsync(command, cancellationToken), pageSize, f => f.Id);
    }

    private static async Task<List<PortForwardView>> ReadAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        var forwards = new List<PortForwardView>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            forwards.Add(new PortForwardView(reader.GetGuid(0), reader.GetGuid(1), reader.GetGuid(2), reader.GetInt32(3), reader.GetString(4),
                reader.IsDBNull(5) ? null : reader.GetInt32(5), reader.IsDBNull(6) ? null : reader.GetString(6), reader.IsDBNull(7) ? null : reader.GetString(7),
                reader.GetFieldValue<DateTimeOffset>(8), reader.IsDBNull(9) ? null : reader.GetFieldValue<DateTimeOffset>(9)));
        }

        return forwards;
    }

    /// <summary>The same forward id for the same Idempotency-Key on the same machine: a repeated POST finds the forward it made.</summary>
    private static Guid IdOf(Guid tenantId, Guid machineId, string key)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"port-forward:{tenantId}:{machineId}:{key}"));
        hash[6] = (byte)((hash[6] & 0x0F) | 0x80); // version 8: a name-based id of the platform's own
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80);
        return new Guid(hash.AsSpan(0, 16), bigEndian: true);
    }
}
