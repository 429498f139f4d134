using Microsoft.AspNetCore.Http.HttpResults;
using Platform.Contracts.Networking;
using Platform.EventSourcing;
using Platform.Hosting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;

namespace Platform.Networking.Addressing;

public sealed record PoolView(Guid Id, string Name, string Cidr, int SubnetPrefixLength, long Subnets, int SubnetsAssigned, DateTimeOffset CreatedAt);

public sealed record CreatePoolRequest(string? Name, string? Cidr, int? SubnetPrefixLength);

public sealed record LeaseView(Guid MachineId, string Address, DateTimeOffset AllocatedAt);

public sealed record NetworkView(Guid TenantId, string Subnet, string Gateway, Guid PoolId, IReadOnlyList<LeaseView> Leases, int Quarantined, DateTimeOffset AssignedAt);

/// <summary>Tenant networks (each tenant sees its own; a platform-admin every one) and address pools (platform-admins).</summary>
public static class NetworkEndpoints
{
    public static void MapNetworks(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/v1/networks", ListNetworksAsync);
        app.MapGet("/api/v1/networks/pools", ListPoolsAsync);
        app.MapPost("/api/v1/networks/pools", CreatePoolAsync);
    }

    private static async Task<Ok<Page<NetworkView>>> ListNetworksAsync(Caller caller, EventStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        var pools = (await store.LoadAsync<AddressPools>(AddressPools.Stream, AddressPools.Evolve, cancellationToken)).State ?? AddressPools.Empty;
        var views = new List<NetworkView>();
        foreach (var subnet in pools.Subnets.Values.Where(s => caller.SeesAllTenants || s.TenantId == caller.TenantId).OrderBy(s => s.TenantId))
        {
            var leases = (await store.LoadAsync<SubnetLeases>(SubnetLeases.StreamOf(subnet.TenantId), SubnetLeases.Evolve, cancellationToken)).State ?? SubnetLeases.Empty;
            var now = time.GetUtcNow();
            views.Add(new NetworkView(subnet.TenantId, subnet.Cidr, subnet.Gateway, subnet.PoolId,
                leases.Leases.Values.OrderBy(l => l.AllocatedAt).Select(l => new LeaseView(l.MachineId, l.Address, l.AllocatedAt)).ToList(),
                leases.Quarantined.Count(q => q.Value > now), subnet.AssignedAt));
        }

        return TypedResults.Ok(new Page<NetworkView>(views, null));
    }

    private static async Task<Ok<Page<PoolView>>> ListPoolsAsync(Caller caller, EventStore store, CancellationToken cancellationToken)
    {
        RequirePlatformAdmin(caller);
        var pools = (await store.LoadAsync<AddressPools>(AddressPools.Stream, AddressPools.Evolve, cancellationToken)).State ?? AddressPools.Empty;
        return TypedResults.Ok(new Page<PoolView>(pools.Pools.Select(p => View(p, pools)).ToList(), null));
    }

    private static async Task<Created<PoolView>> CreatePoolAsync(CreatePoolRequest? request, Caller caller, HttpContext http, EventStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        RequirePlatformAdmin(caller);
        var errors = new Dictionary<string, string[]>();
        if (request?.Name is not { Length: > 0 and <= 63 })
        {
            errors["name"] = ["is required, 1 to 63 characters"];
        }

        if (!Ipv4Block.TryParse(request?.Cidr, out var block))
        {
            errors["cidr"] = ["must be an IPv4 CIDR block such as 10.64.0.0/10, with no bits set past the prefix"];
        }
        else if (request!.SubnetPrefixLength is not { } prefix || prefix < block.PrefixLength || prefix > 30)
        {
            errors["subnetPrefixLength"] = [$"is required, between the pool's own prefix ({block.PrefixLength}) and 30"];
        }

        if (errors.Count > 0)
        {
            throw Problems.Validation(errors);
        }

        // A pool added or a subnet carved meanwhile is decided again: the overlap is checked on what is there now.
        PoolView? view = null;
        await store.DecideAsync<AddressPools>(AddressPools.Stream, AddressPools.Evolve, pools =>
        {
            var state = pools ?? AddressPools.Empty;
            if (state.Overlapping(block) is { } overlap)
            {
                throw Problems.Conflict($"{block} overlaps pool '{overlap.Name}' ({overlap.Block}); pools never share an address.");
            }

            var created = new AddressPoolCreated(Guid.CreateVersion7(), request!.Name!, block.ToString(), request.SubnetPrefixLength!.Value, time.GetUtcNow());
            view = View(state.Apply(created).Pools[^1], state);
            return [created];
        }, new EventMetadata(RequestCorrelation.Of(http), Actor: caller.Subject), cancellationToken);
        return TypedResults.Created($"/api/v1/networks/pools/{view!.Id}", view);
    }

    private static PoolView View(AddressPool pool, AddressPools pools) =>
        new(pool.Id, pool.Name, pool.Block.ToString(), pool.SubnetPrefixLength, (long)pool.Block.SubnetCount(pool.SubnetPrefixLength),
            pools.Subnets.Values.Count(s => s.PoolId == pool.Id), pool.CreatedAt);

    private static void RequirePlatformAdmin(Caller caller)
    {
        if (!caller.SeesAllTenants)
        {
            throw Problems.Forbidden("Address pools are the platform's; only a platform-admin manages them.");
        }
    }
}
