using Platform.Contracts.Networking;
using Platform.Networking.Addressing;

namespace Platform.Unit.Tests.Networking.Addressing;

/// <summary>Given the pools and the subnets carved so far, when a tenant needs a subnet, then which one it gets.</summary>
public sealed class AddressPoolsTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 12, 0, 0, TimeSpan.Zero);

    private static AddressPools Given(params object[] events) => events.Aggregate(AddressPools.Empty, (pools, e) => pools.Apply(e));

    [Fact]
    public void Tenants_get_the_pools_subnets_in_order_each_with_its_first_address_as_gateway_until_the_pools_are_full()
    {
        var small = Guid.CreateVersion7();
        var next = Guid.CreateVersion7();
        var (a, b, c) = (Guid.CreateVersion7(), Guid.CreateVersion7(), Guid.CreateVersion7());
        var pools = Given(new AddressPoolCreated(small, "small", "10.70.0.0/23", 24, Now), new AddressPoolCreated(next, "next", "10.80.0.0/24", 24, Now));

        var first = pools.Carve(a, Now)!;
        pools = pools.Apply(first);
        var second = pools.Carve(b, Now)!;
        pools = pools.Apply(second);
        var third = pools.Carve(c, Now)!;
        pools = pools.Apply(third);

        Assert.Equal(new TenantSubnetAssigned(a, small, "10.70.0.0/24", "10.70.0.1", Now), first);
        Assert.Equal(new TenantSubnetAssigned(b, small, "10.70.1.0/24", "10.70.1.1", Now), second);
        Assert.Equal(new TenantSubnetAssigned(c, next, "10.80.0.0/24", "10.80.0.1", Now), third);
        Assert.Null(pools.Carve(Guid.CreateVersion7(), Now));
    }

    [Fact]
    public void A_pool_that_overlaps_an_existing_one_is_found()
    {
        var pools = Given(new AddressPoolCreated(Guid.CreateVersion7(), "main", "10.64.0.0/16", 24, Now));

        Assert.Equal("main", pools.Overlapping(Ipv4Block.Parse("10.64.200.0/24"))?.Name);
        Assert.Null(pools.Overlapping(Ipv4Block.Parse("10.65.0.0/24")));
    }
}
