using Platform.Provisioning.Drivers.MicroVm;

namespace Platform.Unit.Tests.Provisioning.MicroVm;

public sealed class BootAllowanceTests
{
    private double _loadPerCore;

    private BootAllowance Allowance() => new(() => _loadPerCore);

    [Fact]
    public void A_first_boot_on_an_idle_host_is_allowed_three_minutes_under_tcg_and_45_seconds_under_kvm()
    {
        var allowance = Allowance();

        Assert.Equal(TimeSpan.FromSeconds(180), allowance.For("tcg"));
        Assert.Equal(TimeSpan.FromSeconds(45), allowance.For("kvm"));
    }

    [Fact]
    public void Once_boots_were_seen_a_boot_is_allowed_ten_times_the_slowest_but_never_less_than_the_floor()
    {
        var allowance = Allowance();

        allowance.Observe("tcg", TimeSpan.FromSeconds(3), loadPerCoreThen: 0.2);
        Assert.Equal(TimeSpan.FromSeconds(60), allowance.For("tcg"));

        allowance.Observe("tcg", TimeSpan.FromSeconds(12), loadPerCoreThen: 0.2);
        allowance.Observe("tcg", TimeSpan.FromSeconds(4), loadPerCoreThen: 0.2);
        Assert.Equal(TimeSpan.FromSeconds(120), allowance.For("tcg"));
        Assert.Equal(TimeSpan.FromSeconds(45), allowance.For("kvm"));
    }

    [Fact]
    public void A_busy_host_stretches_the_allowance_by_its_load_per_core_up_to_the_ceiling()
    {
        var allowance = Allowance();
        allowance.Observe("kvm", TimeSpan.FromSeconds(1), loadPerCoreThen: 0);

        _loadPerCore = 3;
        Assert.Equal(TimeSpan.FromSeconds(45), allowance.For("kvm"));

        _loadPerCore = 19;
        Assert.Equal(BootAllowance.Ceiling, allowance.For("tcg"));
    }

    [Fact]
    public void A_boot_slowed_by_a_busy_host_counts_as_it_would_have_taken_at_rest()
    {
        var allowance = Allowance();

        allowance.Observe("tcg", TimeSpan.FromSeconds(30), loadPerCoreThen: 3);

        Assert.Equal(TimeSpan.FromSeconds(100), allowance.For("tcg"));
    }
}
