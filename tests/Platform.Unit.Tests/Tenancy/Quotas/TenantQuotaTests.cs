using System.Collections.Immutable;
using Platform.Contracts.Tenancy;
using Platform.Tenancy.Quotas;

namespace Platform.Unit.Tests.Tenancy.Quotas;

/// <summary>Given a tenant's quota events, when a machine asks to reserve, then what the quota decides.</summary>
public sealed class TenantQuotaTests
{
    private static readonly Guid Tenant = Guid.CreateVersion7();
    private static readonly QuotaResources Limits = new(Machines: 3, Vcpus: 4, MemoryMiB: 1024, DiskMiB: 0, Tunnels: 1, PortForwards: 2);

    private static TenantQuota Given(params object[] events) => events.Aggregate(TenantQuota.Initial(Limits), (quota, e) => quota.Apply(e));

    private static QuotaResources Machine(int vcpus, int memoryMiB) => new(1, vcpus, memoryMiB, 0, 0, 0);

    [Fact]
    public void A_reservation_within_every_limit_is_reserved_as_asked()
    {
        var machine = Guid.CreateVersion7();

        var decided = Given().Decide(new ReserveQuota(machine, Tenant, Machine(2, 512)));

        Assert.Equal(new QuotaReserved(machine, Tenant, Machine(2, 512)), decided);
    }

    [Fact]
    public void A_reservation_that_would_break_a_limit_is_rejected_naming_the_first_limit_with_what_is_used_asked_and_allowed()
    {
        var held = Guid.CreateVersion7();
        var asking = Guid.CreateVersion7();

        var decided = Given(new QuotaReserved(held, Tenant, Machine(3, 256))).Decide(new ReserveQuota(asking, Tenant, Machine(2, 256)));

        Assert.Equal(new QuotaRejected(asking, Tenant, "vcpus", 3, 2, 4), decided);
    }

    [Fact]
    public void A_repeated_reservation_of_a_machine_that_holds_its_share_decides_nothing()
    {
        var machine = Guid.CreateVersion7();

        Assert.Null(Given(new QuotaReserved(machine, Tenant, Machine(1, 128))).Decide(new ReserveQuota(machine, Tenant, Machine(1, 128))));
    }

    [Fact]
    public void What_a_machine_releases_is_free_again_and_its_release_is_remembered()
    {
        var first = Guid.CreateVersion7();
        var second = Guid.CreateVersion7();

        var quota = Given(
            new QuotaReserved(first, Tenant, Machine(4, 512)),
            new QuotaReleased(first, Tenant, Machine(4, 512)));

        Assert.Equal(QuotaResources.None, quota.Used);
        Assert.Contains(first, quota.Released);
        Assert.IsType<QuotaReserved>(quota.Decide(new ReserveQuota(second, Tenant, Machine(4, 512))));
    }

    [Fact]
    public void New_limits_hold_for_the_next_reservation_but_take_nothing_from_what_is_held()
    {
        var held = Guid.CreateVersion7();
        var asking = Guid.CreateVersion7();

        var quota = Given(
            new QuotaReserved(held, Tenant, Machine(1, 512)),
            new QuotaLimitsSet(Tenant, Limits with { MemoryMiB = 600 }, DateTimeOffset.UnixEpoch));

        Assert.Equal(ImmutableDictionary<Guid, QuotaResources>.Empty.Add(held, Machine(1, 512)), quota.Reservations);
        Assert.Equal(new QuotaRejected(asking, Tenant, "memoryMiB", 512, 128, 600), quota.Decide(new ReserveQuota(asking, Tenant, Machine(1, 128))));
    }

    [Fact]
    public void A_resource_not_asked_for_never_rejects_even_when_its_limit_is_used_up()
    {
        var tunnelHolder = Guid.CreateVersion7();
        var asking = Guid.CreateVersion7();
        var quota = Given(new QuotaReserved(tunnelHolder, Tenant, new QuotaResources(1, 1, 64, 0, 1, 0)));

        Assert.IsType<QuotaReserved>(quota.Decide(new ReserveQuota(asking, Tenant, Machine(1, 64))));
        Assert.Equal(new QuotaRejected(asking, Tenant, "tunnels", 1, 1, 1), quota.Decide(new ReserveQuota(asking, Tenant, new QuotaResources(1, 1, 64, 0, 1, 0))));
    }

    [Fact]
    public void A_release_gives_back_what_the_machine_holds()
    {
        var machine = Guid.CreateVersion7();

        Assert.Equal(new QuotaReleased(machine, Tenant, Machine(2, 256)),
            Given(new QuotaReserved(machine, Tenant, Machine(2, 256))).Decide(new ReleaseQuota(machine, Tenant)));
    }

    [Fact]
    public void A_release_of_a_machine_that_holds_nothing_is_recorded_so_that_its_late_reservation_is_known_as_released()
    {
        var machine = Guid.CreateVersion7();

        var decided = Given().Decide(new ReleaseQuota(machine, Tenant));

        Assert.Equal(new QuotaReleased(machine, Tenant, QuotaResources.None), decided);
        Assert.Contains(machine, Given(decided!).Released);
    }

    [Fact]
    public void A_repeated_release_decides_nothing()
    {
        var machine = Guid.CreateVersion7();

        Assert.Null(Given(new QuotaReserved(machine, Tenant, Machine(1, 64)), new QuotaReleased(machine, Tenant, Machine(1, 64))).Decide(new ReleaseQuota(machine, Tenant)));
    }
}
