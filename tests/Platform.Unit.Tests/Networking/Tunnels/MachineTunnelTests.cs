using Platform.Contracts.Networking;
using Platform.Networking.Addressing;
using Platform.Networking.Tunnels;

namespace Platform.Unit.Tests.Networking.Tunnels;

/// <summary>Given a tunnel's events, when the next one comes, then what the tunnel is; and which exit-node address the next tunnel gets.</summary>
public sealed class MachineTunnelTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 3, 12, 0, 0, TimeSpan.Zero);
    private static readonly Guid Machine = Guid.CreateVersion7(), Tenant = Guid.CreateVersion7(), Node = Guid.CreateVersion7(), Host = Guid.CreateVersion7();
    private static readonly TunnelRequested Requested = new(Machine, Tenant, Node, Host, "10.70.0.2", "100.64.0.2", Now, "10.70.0.1", 24);

    private static MachineTunnel Given(params object[] events) => events.Aggregate((MachineTunnel?)null, MachineTunnel.Evolve)!;

    [Fact]
    public void A_requested_tunnel_attaches_with_its_key_and_waits_for_its_first_handshake()
    {
        var tunnel = Given(Requested, new TunnelAttached(Machine, Tenant, Node, Host, "100.64.0.2", "public-key", Now));

        Assert.Equal(TunnelStates.Attached, tunnel.State);
        Assert.Equal("public-key", tunnel.PublicKey);
        Assert.Equal(TunnelHealth.Pending, tunnel.Health);
        Assert.Null(tunnel.Reattach);
    }

    [Fact]
    public void Handshakes_make_an_attached_tunnel_up_or_down_and_a_reattach_in_flight_is_known_until_it_ends()
    {
        var attached = Given(Requested, new TunnelAttached(Machine, Tenant, Node, Host, "100.64.0.2", "k1", Now));
        var request = Guid.CreateVersion7();

        Assert.Equal(TunnelHealth.Up, MachineTunnel.Evolve(attached, new TunnelUp(Machine, Tenant, Node, Host, Now, Now)).Health);
        Assert.Equal(TunnelHealth.Down, MachineTunnel.Evolve(attached, new TunnelDown(Machine, Tenant, Node, Host, "no handshake", null, Now)).Health);
        var reattaching = MachineTunnel.Evolve(attached, new TunnelReattachRequested(Machine, Tenant, request, "user:a", Now));
        Assert.Equal((TunnelStates.Attaching, request), (reattaching.State, reattaching.Reattach));
        var failed = MachineTunnel.Evolve(reattaching, new TunnelReattachFailed(Machine, Tenant, Node, request, "host gone", Now));
        Assert.Equal((TunnelStates.Attached, TunnelHealth.Down, (Guid?)null), (failed.State, failed.Health, failed.Reattach));
        Assert.Equal(request, failed.LastReattach);
    }

    [Fact]
    public void A_tunnel_detached_before_it_was_requested_stays_detached_and_a_stream_cannot_start_otherwise()
    {
        var early = Given(new TunnelDetached(Machine, Tenant, Node, Now));

        Assert.Equal(TunnelStates.Detached, early.State);
        Assert.Equal(TunnelStates.Detached, Given(Requested, new TunnelDetachRequested(Machine, Tenant, Now), new TunnelDetached(Machine, Tenant, Node, Now)).State);
        Assert.Equal(TunnelStates.Detached, Given(Requested, new TunnelAbandoned(Machine, Tenant, Node, "no host", Now)).State);
        Assert.Throws<InvalidOperationException>(() => Given(new TunnelUp(Machine, Tenant, Node, Host, Now, Now)));
    }

    [Fact]
    public void The_host_gets_what_it_needs_to_set_the_tunnel_up_through_the_exit_node()
    {
        var node = new ExitNodeRegistered(Node, Tenant, "exit", "203.0.113.7:51820", "node-key", ["0.0.0.0/0"], "eu", null, null, null, Now);
        var rekey = Guid.CreateVersion7();

        var setUp = Given(Requested).SetUp(node, rekey);

        Assert.Equal(new SetUpTunnel(Machine, Tenant, "10.70.0.2", "10.70.0.1", 24, "100.64.0.2", "203.0.113.7:51820", "node-key", setUp.AllowedIps, rekey), setUp);
        Assert.Equal(["0.0.0.0/0"], setUp.AllowedIps);
    }

    [Fact]
    public void Each_tunnel_through_an_exit_node_gets_the_lowest_free_address_after_the_nodes_own_until_none_is_left()
    {
        var range = Ipv4Block.Parse("100.64.0.0/29");
        var (a, b) = (Guid.CreateVersion7(), Guid.CreateVersion7());
        var peers = new object[] { new TunnelAddressLeased(Node, a, "100.64.0.2"), new TunnelAddressLeased(Node, b, "100.64.0.3") }
            .Aggregate(ExitNodePeers.Empty, ExitNodePeers.Evolve);

        Assert.Equal("100.64.0.4", peers.Free(range));
        var released = ExitNodePeers.Evolve(peers, new TunnelAddressReleased(Node, a));
        Assert.Equal("100.64.0.2", released.Free(range));
        var full = new[] { "100.64.0.4", "100.64.0.5", "100.64.0.6" }.Select(address => new TunnelAddressLeased(Node, Guid.CreateVersion7(), address))
            .Aggregate(peers, (p, e) => ExitNodePeers.Evolve(p, e));
        Assert.Null(full.Free(range));
    }

    [Fact]
    public void A_host_report_attaches_a_tunnel_being_attached_and_records_nothing_for_one_detached_since()
    {
        var report = new TunnelSetUp(Machine, Tenant, Host, "public-key", "kernel");

        Assert.Equal([new TunnelAttached(Machine, Tenant, Node, Host, "100.64.0.2", "public-key", Now)], MachineTunnel.Decide(Given(Requested), report, Now));
        Assert.Empty(MachineTunnel.Decide(Given(Requested, new TunnelDetachRequested(Machine, Tenant, Now)), report, Now));
        Assert.Empty(MachineTunnel.Decide(null, report, Now));
    }

    [Fact]
    public void A_first_attach_the_host_could_not_make_is_abandoned_with_its_address_given_back_and_a_failed_reattach_keeps_the_tunnel()
    {
        var failure = new TunnelSetUpFailed(Machine, Tenant, Host, "no wireguard");
        var abandoned = MachineTunnel.Decide(Given(Requested), failure, Now);
        Assert.Equal([new TunnelAbandoned(Machine, Tenant, Node, "no wireguard", Now)], abandoned);
        Assert.Equal(Node, MachineTunnel.ReleasesAddressOf(Given(Requested), abandoned));

        var request = Guid.CreateVersion7();
        var reattaching = Given(Requested, new TunnelAttached(Machine, Tenant, Node, Host, "100.64.0.2", "k1", Now), new TunnelReattachRequested(Machine, Tenant, request, "user:a", Now));
        var kept = MachineTunnel.Decide(reattaching, failure, Now);
        Assert.Equal([new TunnelReattachFailed(Machine, Tenant, Node, request, "the host could not set the tunnel up: no wireguard", Now)], kept);
        Assert.Null(MachineTunnel.ReleasesAddressOf(reattaching, kept));
    }

    [Fact]
    public void A_reattach_is_made_once_per_request_and_refused_for_a_tunnel_attached_before_its_segment_was_recorded()
    {
        var attached = Given(Requested, new TunnelAttached(Machine, Tenant, Node, Host, "100.64.0.2", "k1", Now));
        var command = new ReattachTunnel(Machine, Tenant, Guid.CreateVersion7(), "user:a");

        Assert.Equal([new TunnelReattachRequested(Machine, Tenant, command.RequestId, "user:a", Now)], MachineTunnel.Decide(attached, command, Now));
        var requested = MachineTunnel.Evolve(MachineTunnel.Evolve(attached, new TunnelReattachRequested(Machine, Tenant, command.RequestId, "user:a", Now)),
            new TunnelAttached(Machine, Tenant, Node, Host, "100.64.0.2", "k2", Now));
        Assert.Empty(MachineTunnel.Decide(requested, command, Now));
        var unrecorded = Given(Requested with { Gateway = null, PrefixLength = null }, new TunnelAttached(Machine, Tenant, Node, Host, "100.64.0.2", "k1", Now));
        Assert.IsType<TunnelReattachFailed>(Assert.Single(MachineTunnel.Decide(unrecorded, command, Now)));
        Assert.Empty(MachineTunnel.Decide(null, command, Now));
    }

    [Fact]
    public void A_detach_asks_the_host_to_remove_the_tunnel_records_one_never_requested_and_the_removal_gives_the_address_back()
    {
        var command = new DetachTunnel(Machine, Tenant);

        Assert.Equal([new TunnelDetached(Machine, Tenant, null, Now)], MachineTunnel.Decide(null, command, Now));
        Assert.Equal([new TunnelDetachRequested(Machine, Tenant, Now)], MachineTunnel.Decide(Given(Requested), command, Now));
        var detaching = Given(Requested, new TunnelDetachRequested(Machine, Tenant, Now));
        Assert.Empty(MachineTunnel.Decide(detaching, command, Now));

        var removed = MachineTunnel.Decide(detaching, new TunnelRemoved(Machine, Tenant, Host), Now);
        Assert.Equal([new TunnelDetached(Machine, Tenant, Node, Now)], removed);
        Assert.Equal(Node, MachineTunnel.ReleasesAddressOf(detaching, removed));
        Assert.Empty(MachineTunnel.Decide(Given(Requested), new TunnelRemoved(Machine, Tenant, Host), Now));
    }
}
