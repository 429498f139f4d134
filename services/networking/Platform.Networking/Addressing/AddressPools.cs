using System.Collections.Immutable;
using Platform.Contracts.Networking;

namespace Platform.Networking.Addressing;

/// <summary>One pool of addresses, carved into tenant subnets of one size.</summary>
public sealed record AddressPool(Guid Id, string Name, Ipv4Block Block, int SubnetPrefixLength, DateTimeOffset CreatedAt);

/// <summary>
/// Every pool and the subnet each tenant holds, folded from the one stream <c>address-pools</c>. Carving
/// appends to it with its expected version, so two tenants can never be given the same subnet.
/// </summary>
public sealed record AddressPools(ImmutableList<AddressPool> Pools, ImmutableDictionary<Guid, TenantSubnetAssigned> Subnets)
{
    public const string Stream = "address-pools";

    public static AddressPools Empty { get; } = new([], ImmutableDictionary<Guid, TenantSubnetAssigned>.Empty);

    public static AddressPools Evolve(AddressPools? pools, object @event) => (pools ?? Empty).Apply(@event);

    public AddressPools Apply(object @event) => @event switch
    {
        AddressPoolCreated created => this with { Pools = Pools.Add(new AddressPool(created.PoolId, created.Name, Ipv4Block.Parse(created.Cidr), created.SubnetPrefixLength, created.CreatedAt)) },
        TenantSubnetAssigned assigned => this with { Subnets = Subnets.SetItem(assigned.TenantId, assigned) },
        _ => this,
    };

    public AddressPool? Overlapping(Ipv4Block block) => Pools.FirstOrDefault(p => p.Block.Overlaps(block));

    /// <summary>The tenant's subnet from the first pool (in the order they were created) with one free; null when every pool is full.</summary>
    public TenantSubnetAssigned? Carve(Guid tenantId, DateTimeOffset now)
    {
        var carved = Subnets.Values.Select(s => Ipv4Block.Parse(s.Cidr).Network).ToHashSet();
        foreach (var pool in Pools)
        {
            for (var index = 0UL; index < pool.Block.SubnetCount(pool.SubnetPrefixLength); index++)
            {
                var subnet = pool.Block.Subnet(pool.SubnetPrefixLength, index);
                if (!carved.Contains(subnet.Network))
                {
                    return new TenantSubnetAssigned(tenantId, pool.Id, subnet.ToString(), subnet.Address(1).ToString(), now);
                }
            }
        }

        return null;
    }
}
