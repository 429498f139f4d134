using Platform.Contracts.Networking;
using Platform.Networking.Addressing;

namespace Platform.Unit.Tests.Networking.Addressing;

/// <summary>Given a tenant subnet's lease events, when a machine asks for an address, then which one it gets.</summary>
public sealed class SubnetLeasesTests
{
    private static readonly Guid Tenant = Guid.CreateVersion7();
    private static readonly Ipv4Block Subnet = Ipv4Block.Parse("10.64.3.0/29");
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 12, 0, 0, TimeSpan.Zero);

    private static SubnetLeases Given(params object[] events) => events.Aggregate(SubnetLeases.Empty, (leases, e) => leases.Apply(e));

    private static NetworkAllocated Lease(Guid machine, string address) => new(machine, Tenant, Subnet.ToString(), address, 29, "10.64.3.1", Now);

    [Fact]
    public void The_first_machine_gets_the_lowest_address_after_the_gateway_with_the_gateway_and_prefix()
    {
        var machine = Guid.CreateVersion7();

        Assert.Equal(Lease(machine, "10.64.3.2"), Given().Allocate(machine, Tenant, Subnet, Now));
    }

    [Fact]
    public void A_leased_address_is_never_given_twice_and_the_broadcast_address_never_at_all()
    {
        var leases = Given(
            Lease(Guid.CreateVersion7(), "10.64.3.2"), Lease(Guid.CreateVersion7(), "10.64.3.3"), Lease(Guid.CreateVersion7(), "10.64.3.4"),
            Lease(Guid.CreateVersion7(), "10.64.3.5"));

        Assert.Equal("10.64.3.6", leases.Allocate(Guid.CreateVersion7(), Tenant, Subnet, Now)?.Address);
        Assert.Null(leases.Apply(Lease(Guid.CreateVersion7(), "10.64.3.6")).Allocate(Guid.CreateVersion7(), Tenant, Subnet, Now));
    }

    [Fact]
    public void A_released_address_stays_in_quarantine_until_its_time_and_is_given_again_after()
    {
        var first = Guid.CreateVersion7();
        var leases = Given(
            Lease(first, "10.64.3.2"),
            new NetworkReleased(first, Tenant, "10.64.3.2", Now, QuarantinedUntil: Now.AddMinutes(5)));

        Assert.Equal("10.64.3.3", leases.Allocate(Guid.CreateVersion7(), Tenant, Subnet, Now.AddMinutes(4))?.Address);
        Assert.Equal("10.64.3.2", leases.Allocate(Guid.CreateVersion7(), Tenant, Subnet, Now.AddMinutes(5).AddSeconds(1))?.Address);
        Assert.Empty(leases.Leases);
        Assert.True(leases.Released.ContainsKey(first));
    }

    [Fact]
    public void A_release_that_came_before_any_allocation_is_remembered_and_frees_nothing()
    {
        var machine = Guid.CreateVersion7();
        var held = Guid.CreateVersion7();

        var leases = Given(Lease(held, "10.64.3.2"), new NetworkReleased(machine, Tenant, null, Now, Now));

        Assert.True(leases.Released.ContainsKey(machine));
        Assert.Equal([held], leases.Leases.Keys);
        Assert.Empty(leases.Quarantined);
    }
}
