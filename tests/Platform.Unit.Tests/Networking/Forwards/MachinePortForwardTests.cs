using Platform.Contracts.Networking;
using Platform.Networking.Forwards;

namespace Platform.Unit.Tests.Networking.Forwards;

/// <summary>Given a port forward's events, when the next one comes, then what the forward is and whether the host may hold it.</summary>
public sealed class MachinePortForwardTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 3, 12, 0, 0, TimeSpan.Zero);
    private static readonly Guid Forward = Guid.CreateVersion7(), Machine = Guid.CreateVersion7(), Tenant = Guid.CreateVersion7(), Host = Guid.CreateVersion7();
    private static readonly PortForwardRequested Requested = new(Forward, Machine, Tenant, Host, "10.70.0.2", 8080, Now);

    private static MachinePortForward Given(params object[] events) => events.Aggregate((MachinePortForward?)null, MachinePortForward.Evolve)!;

    [Fact]
    public void A_requested_forward_opens_on_the_host_port_it_was_given_and_closes_when_asked()
    {
        var open = Given(Requested, new PortForwarded(Forward, Machine, Tenant, Host, 8080, 40123, "192.0.2.10", Now));

        Assert.Equal((PortForwardStates.Open, 40123, "192.0.2.10"), (open.State, open.HostPort, open.HostAddress));
        Assert.True(open.MayBeOnHost);
        var closing = MachinePortForward.Evolve(open, new PortForwardRemoveRequested(Forward, Tenant, Now));
        Assert.Equal(PortForwardStates.Closing, closing.State);
        Assert.True(closing.MayBeOnHost, "a close must still reach the host");
        var removed = MachinePortForward.Evolve(closing, new PortForwardRemoved(Forward, Machine, Tenant, Host, 8080, 40123, null, Now));
        Assert.False(removed.MayBeOnHost);
    }

    [Fact]
    public void A_forward_the_host_could_not_open_is_failed_with_why_and_holds_nothing_there()
    {
        var failed = Given(Requested, new PortForwardAbandoned(Forward, Machine, Tenant, "port 8080 is not listening", Now));

        Assert.Equal((PortForwardStates.Failed, "port 8080 is not listening"), (failed.State, failed.LastError));
        Assert.False(failed.MayBeOnHost);
    }

    [Fact]
    public void A_forward_removed_before_it_was_requested_stays_removed_and_a_stream_cannot_start_otherwise()
    {
        var early = Given(new PortForwardRemoved(Forward, Machine, Tenant, Host, 8080, null, "its machine was destroyed", Now));

        Assert.Equal(PortForwardStates.Removed, early.State);
        Assert.Equal("its machine was destroyed", early.LastError);
        Assert.Throws<InvalidOperationException>(() => Given(new PortForwarded(Forward, Machine, Tenant, Host, 8080, 1, "a", Now)));
    }

    [Fact]
    public void A_host_report_opens_a_forward_being_opened_and_records_nothing_for_one_removed_since()
    {
        var opened = new PortForwardOpened(Forward, Machine, Tenant, Host, 40123, "192.0.2.10");

        Assert.Equal([new PortForwarded(Forward, Machine, Tenant, Host, 8080, 40123, "192.0.2.10", Now)], MachinePortForward.Decide(Given(Requested), opened, Now));
        Assert.Empty(MachinePortForward.Decide(Given(Requested, new PortForwardRemoveRequested(Forward, Tenant, Now)), opened, Now));
        Assert.Empty(MachinePortForward.Decide(null, opened, Now));
    }

    [Fact]
    public void A_forward_the_host_could_not_open_fails_with_why_and_one_being_closed_is_removed()
    {
        var failed = new PortForwardFailed(Forward, Machine, Tenant, Host, "port in use");

        Assert.Equal([new PortForwardAbandoned(Forward, Machine, Tenant, "port in use", Now)], MachinePortForward.Decide(Given(Requested), failed, Now));
        var closing = Given(Requested, new PortForwardRemoveRequested(Forward, Tenant, Now));
        Assert.Equal([new PortForwardRemoved(Forward, Machine, Tenant, Host, 8080, null, null, Now)], MachinePortForward.Decide(closing, failed, Now));
    }

    [Fact]
    public void A_forward_closed_by_its_host_is_removed_saying_whether_anyone_asked()
    {
        var closed = new PortForwardClosed(Forward, Machine, Tenant, Host);
        var open = Given(Requested, new PortForwarded(Forward, Machine, Tenant, Host, 8080, 40123, "192.0.2.10", Now));

        Assert.Equal("closed on its host with its machine", Assert.IsType<PortForwardRemoved>(Assert.Single(MachinePortForward.Decide(open, closed, Now))).Reason);
        var closing = MachinePortForward.Evolve(open, new PortForwardRemoveRequested(Forward, Tenant, Now));
        Assert.Null(Assert.IsType<PortForwardRemoved>(Assert.Single(MachinePortForward.Decide(closing, closed, Now))).Reason);
        Assert.Empty(MachinePortForward.Decide(MachinePortForward.Evolve(closing, new PortForwardRemoved(Forward, Machine, Tenant, Host, 8080, 40123, null, Now)), closed, Now));
    }

    [Fact]
    public void A_removal_closes_a_forward_on_its_host_removes_a_failed_one_at_once_and_ignores_another_tenants()
    {
        Assert.Equal([new PortForwardRemoveRequested(Forward, Tenant, Now)], MachinePortForward.DecideRemoval(Given(Requested), Tenant, Now));
        var failed = Given(Requested, new PortForwardAbandoned(Forward, Machine, Tenant, "port in use", Now));
        Assert.IsType<PortForwardRemoved>(Assert.Single(MachinePortForward.DecideRemoval(failed, Tenant, Now)));
        Assert.Empty(MachinePortForward.DecideRemoval(Given(Requested), Guid.CreateVersion7(), Now));
        Assert.Empty(MachinePortForward.DecideRemoval(null, Tenant, Now));
    }
}
