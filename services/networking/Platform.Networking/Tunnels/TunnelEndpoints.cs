using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;
using Platform.EventSourcing;
using Platform.Hosting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;

namespace Platform.Networking.Tunnels;

/// <summary>
/// A machine's tunnel as the API shows it. <paramref name="HandshakeAgeSeconds"/> is how long ago the tunnel last
/// completed a handshake with its exit node (WireGuard renews one every two minutes while traffic flows; a keepalive
/// every 25 s keeps one flowing), null before the first. <paramref name="Health"/> is <c>pending</c> (attached, waiting for its
/// first handshake), <c>up</c> or <c>down</c> (see <see cref="Platform.Contracts.Networking.TunnelHealth"/>), since <paramref name="HealthSince"/>.
/// </summary>
public sealed record TunnelView(
    Guid MachineId,
    Guid ExitNodeId,
    Guid HostId,
    string TunnelAddress,
    string State,
    string? PublicKey,
    DateTimeOffset RequestedAt,
    DateTimeOffset? AttachedAt,
    DateTimeOffset? LatestHandshakeAt,
    double? HandshakeAgeSeconds,
    string Health,
    DateTimeOffset? HealthSince)
{
    /// <summary>
    /// The tunnel as its stream holds it: handshakes only as far as its health changes recorded them, and no handshake age
    /// (the host's live reports are no part of a past).
    /// </summary>
    public static TunnelView Of(MachineTunnel tunnel) => new(tunnel.MachineId, tunnel.ExitNodeId, tunnel.HostId, tunnel.TunnelAddress, tunnel.State, tunnel.PublicKey,
        tunnel.RequestedAt ?? default, tunnel.AttachedAt, tunnel.LatestHandshakeAt, null, tunnel.Health, tunnel.HealthSince);
}

/// <summary>Tunnels are made and removed by the machine saga; the API shows them, the caller's tenant's only.</summary>
public static class TunnelEndpoints
{
    private const string Columns = "machine_id, exit_node_id, host_id, tunnel_address, state, public_key, requested_at, attached_at, latest_handshake_at, health, health_since";

    public static void MapTunnels(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/v1/tunnels", ListAsync);
        app.MapGet("/api/v1/tunnels/{machineId:guid}", GetAsync);
    }

    private static async Task<Ok<Page<TunnelView>>> ListAsync(Caller caller, NpgsqlDataSource dataSource, EventStore store, TimeProvider time,
        string? cursor, int? limit, CancellationToken cancellationToken)
    {
        var (pageSize, after) = Paging.Read(limit, cursor);
        await using var command = dataSource.CreateCommand(
            $"SELECT {Columns} FROM {store.Schema}.tunnels WHERE ($1 OR tenant_id = $2) AND machine_id > $3 ORDER BY machine_id LIMIT $4");
        command.Parameters.AddWithValue(caller.SeesAllTenants);
        command.Parameters.AddWithValue(caller.TenantId ?? Guid.Empty);
        command.Parameters.AddWithValue(after);
        command.Parameters.AddWithValue(pageSize + 1);
        var tunnels = await ReadAsync(command, time, cancellationToken);
        return TypedResults.Ok(Paging.Of(tunnels, pageSize, t => t.MachineId));
    }

    /// <summary>The machine's tunnel now, or with <c>?version=</c> or <c>?at=</c> as it stood then (a detached tunnel included).</summary>
    private static async Task<Ok<TunnelView>> GetAsync(
        Guid machineId, long? version, string? at, Caller caller, NpgsqlDataSource dataSource, EventStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        if (AsOf.Read(version, at, "tunnel") is { } asOf)
        {
            var then = await store.LoadAsOfAsync<MachineTunnel>(MachineTunnel.StreamOf(machineId), MachineTunnel.Evolve, asOf.Version, asOf.At, cancellationToken);
            return then.State is { } past && caller.CanSee(past.TenantId) ? TypedResults.Ok(TunnelView.Of(past)) : throw Problems.NotFound("tunnel");
        }

        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM {store.Schema}.tunnels WHERE machine_id = $1 AND ($2 OR tenant_id = $3)");
        command.Parameters.AddWithValue(machineId);
        command.Parameters.AddWithValue(caller.SeesAllTenants);
        command.Parameters.AddWithValue(caller.TenantId ?? Guid.Empty);
        return (await ReadAsync(command, time, cancellationToken)).FirstOrDefault() is { } tunnel ? TypedResults.Ok(tunnel) : throw Problems.NotFound("tunnel");
    }

    private static async Task<List<TunnelView>> ReadAsync(NpgsqlCommand command, TimeProvider time, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var tunnels = new List<TunnelView>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            DateTimeOffset? handshake = reader.IsDBNull(8) ? null : reader.GetFieldValue<DateTimeOffset>(8);
            tunnels.Add(new TunnelView(reader.GetGuid(0), reader.GetGuid(1), reader.GetGuid(2), reader.GetString(3), reader.GetString(4),
                reader.IsDBNull(5) ? null : reader.GetString(5), reader.GetFieldValue<DateTimeOffset>(6), reader.IsDBNull(7) ? null : reader.GetFieldValue<DateTimeOffset>(7),
                handshake, handshake is { } at ? Math.Round((now - at).TotalSeconds, 1) : null,
                reader.GetString(9), reader.IsDBNull(10) ? null : reader.GetFieldValue<DateTimeOffset>(10)));
        }

        return tunnels;
    }
}
