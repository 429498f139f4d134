using System.Diagnostics;
using System.Net;
using Platform.Provisioning.Drivers.Networking;
using Xunit.Abstractions;

namespace Platform.Provisioning.Tests;

/// <summary>
/// WireGuard tunnels through an exit node with real namespaces, wireguard-go (or the kernel's WireGuard) and
/// nftables, proved with real TCP connections: the exit node is a namespace reached from the host over a veth.
/// </summary>
public sealed class WireGuardTunnelTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly IPAddress TunnelAddress = IPAddress.Parse("10.77.0.2");
    private readonly ScratchNetwork _network = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _network.DisposeAsync();

    [Fact]
    public async Task A_machines_egress_leaves_through_the_exit_node_as_the_tunnel_address_until_the_tunnel_is_detached()
    {
        var segment = await _network.SegmentAsync("w", "10.202.1.1");
        var machine = await _network.MachineAsync(segment, "w1", "10.202.1.2", "10.202.1.1");
        using var machineKey = WireGuardPrivateKey.Generate();
        var exit = await _network.ExitNodeAsync(await machineKey.PublicKeyAsync(), TunnelAddress);
        var fromMachine = FromMachine(machine, exit.Server);
        Assert.False(await SourceAddressServer.ReachableAsync(fromMachine), "without a tunnel the server behind the exit node is out of reach");

        var clock = Stopwatch.StartNew();
        var tunnel = await AttachAsync(segment, "w1", "10.202.1.2", exit, machineKey);
        var attached = clock.Elapsed;
        var handshake = await FirstHandshakeAsync(tunnel);
        var handshaken = clock.Elapsed;

        Assert.Equal(TunnelAddress.ToString(), await SourceAddressServer.AskAsync(fromMachine));
        Assert.Equal(await machineKey.PublicKeyAsync(), tunnel.PublicKey);
        Assert.InRange(handshake, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddSeconds(1));
        using var daemon = tunnel.Implementation == WireGuardImplementation.Userspace ? WireGuardInterface.DaemonOf(tunnel.Interface) : null;
        Assert.True(tunnel.Implementation == WireGuardImplementation.Kernel || daemon is not null, "wireguard-go serves the tunnel");

        clock.Restart();
        await tunnel.DetachAsync();
        var detached = clock.Elapsed;

        Assert.False(await SourceAddressServer.ReachableAsync(fromMachine), "after detaching, the server is out of reach again");
        await AssertNothingLeftAsync(segment, tunnel, daemon?.Id);
        output.WriteLine($"{tunnel.Implementation}: attach {attached.TotalMilliseconds:F0} ms, first handshake {handshaken.TotalMilliseconds:F0} ms after the attach began, detach {detached.TotalMilliseconds:F0} ms");
    }

    [Fact]
    public async Task Only_the_machine_the_tunnel_is_for_goes_through_it()
    {
        var segment = await _network.SegmentAsync("o", "10.202.3.1");
        var machine = await _network.MachineAsync(segment, "o1", "10.202.3.2", "10.202.3.1");
        var neighbour = await _network.MachineAsync(segment, "o2", "10.202.3.3", "10.202.3.1");
        await _network.ServerAsync(machine, IPAddress.Parse("10.202.3.2"), 8080);
        using var machineKey = WireGuardPrivateKey.Generate();
        var exit = await _network.ExitNodeAsync(await machineKey.PublicKeyAsync(), TunnelAddress);

        await AttachAsync(segment, "o1", "10.202.3.2", exit, machineKey);

        Assert.Equal(TunnelAddress.ToString(), await SourceAddressServer.AskAsync(FromMachine(machine, exit.Server)));
        Assert.False(await SourceAddressServer.ReachableAsync(FromMachine(neighbour, exit.Server)), "the neighbour has no tunnel");

        // An exit node that routes the tenant's subnet into the tunnel still cannot open a connection to the machine.
        await ScratchNetwork.ReadAsync("wg", "set", exit.Interface, "peer", await machineKey.PublicKeyAsync(), "allowed-ips", $"{TunnelAddress}/32,10.202.3.0/24");
        await ScratchNetwork.ReadAsync("ip", "-n", exit.Namespace, "route", "add", "10.202.3.0/24", "dev", exit.Interface);
        Assert.False(await SourceAddressServer.ReachableAsync(FromMachine(exit.Namespace, new IPEndPoint(IPAddress.Parse("10.202.3.2"), 8080))), "the exit node cannot open connections to the machine");
        Assert.Equal(TunnelAddress.ToString(), await SourceAddressServer.AskAsync(FromMachine(machine, exit.Server)));
    }

    [Fact]
    public async Task A_machine_with_a_tunnel_still_answers_through_its_port_forward()
    {
        var segment = await _network.SegmentAsync("p", "10.202.4.1");
        var machine = await _network.MachineAsync(segment, "p1", "10.202.4.2", "10.202.4.1");
        await _network.ServerAsync(machine, IPAddress.Parse("10.202.4.2"), 8080);
        using var machineKey = WireGuardPrivateKey.Generate();
        var exit = await _network.ExitNodeAsync(await machineKey.PublicKeyAsync(), TunnelAddress);
        await AttachAsync(segment, "p1", "10.202.4.2", exit, machineKey);

        var forwardId = "fwd-p1-" + _network.Run;
        _network.OnDispose(() => PortForward.RemoveAsync(forwardId));
        var forward = await PortForward.AddAsync(segment, forwardId, IPAddress.Parse("10.202.4.2"), 8080, PortForwardTests.Options(_network.Run, region: 29000));

        var uplink = (await SegmentUplink.ListAsync()).Single(u => u.Segment == segment.Namespace);
        Assert.Equal(uplink.HostAddress.ToString(), await SourceAddressServer.AskAsync(SourceAddressServer.FromHost(IPAddress.Loopback, forward.HostPort)));
        Assert.Equal(TunnelAddress.ToString(), await SourceAddressServer.AskAsync(FromMachine(machine, exit.Server)));
    }

    [Fact]
    public async Task Deleting_the_segment_takes_its_tunnels_and_their_daemons_with_it()
    {
        var segment = await _network.SegmentAsync("d", "10.202.5.1");
        await _network.MachineAsync(segment, "d1", "10.202.5.2", "10.202.5.1");
        using var machineKey = WireGuardPrivateKey.Generate();
        var exit = await _network.ExitNodeAsync(await machineKey.PublicKeyAsync(), TunnelAddress);
        var tunnel = await AttachAsync(segment, "d1", "10.202.5.2", exit, machineKey);
        Assert.Contains(tunnel.Interface, await WireGuardTunnel.ListAsync(segment.Namespace));

        await segment.DeleteAsync();

        var deadline = DateTime.UtcNow.AddSeconds(5);
        while ((await WireGuardTunnel.ListAsync()).Contains(tunnel.Interface))
        {
            Assert.True(DateTime.UtcNow < deadline, "the tunnel went with its segment");
            await Task.Delay(50);
        }

        Assert.Null(WireGuardInterface.DaemonOf(tunnel.Interface));
    }

    [Fact]
    public async Task What_a_crashed_daemon_leaves_is_found_by_name_and_removed()
    {
        var segment = await _network.SegmentAsync("l", "10.202.10.1");
        using var key = WireGuardPrivateKey.Generate();
        using var exitKey = WireGuardPrivateKey.Generate();
        var tunnelId = "tun-l1-" + _network.Run;
        var name = WireGuardTunnel.InterfaceNameFor(tunnelId);
        _network.OnDispose(() => WireGuardTunnel.DetachAsync(segment.Namespace, name));

        // No exit node answers here: a tunnel attaches without one, and only the handshake waits for it.
        var tunnel = await WireGuardTunnel.AttachAsync(
            segment,
            new TunnelSpec(tunnelId, IPAddress.Parse("10.202.10.2"), TunnelAddress, 32, new WireGuardPeer(await exitKey.PublicKeyAsync(), "203.0.113.1:51820", [IPNetwork.Parse("0.0.0.0/0")], 25)),
            key);
        if (tunnel.Implementation == WireGuardImplementation.Userspace)
        {
            using var daemon = WireGuardInterface.DaemonOf(name);
            Assert.NotNull(daemon);
            daemon.Kill();
        }
        else
        {
            await IpCommand.RunAsync("-n", segment.Namespace, "link", "delete", name);
        }

        var deadline = DateTime.UtcNow.AddSeconds(5);
        while ((await ScratchNetwork.ReadAsync("ip", "-n", segment.Namespace, "link", "show")).Contains(name, StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < deadline, "the interface went with its daemon");
            await Task.Delay(50);
        }

        Assert.Equal([name], await WireGuardTunnel.ListAsync(segment.Namespace));
        Assert.Contains($"lookup {tunnel.RoutingTable}", await ScratchNetwork.ReadAsync("ip", "-n", segment.Namespace, "rule", "show"), StringComparison.Ordinal);

        await WireGuardTunnel.DetachAsync(segment.Namespace, name);

        await AssertNothingLeftAsync(segment, tunnel, null);
    }

    [Theory]
    [InlineData("not-a-key", "10.203.0.2:51820", "0.0.0.0/0")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=AAAA", "10.203.0.2:51820", "0.0.0.0/0")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", "10.203.0.2:51820", "0.0.0.0/0")]
    [InlineData(ValidKey, "10.203.0.2", "0.0.0.0/0")]
    [InlineData(ValidKey, "10.203.0.2:0", "0.0.0.0/0")]
    [InlineData(ValidKey, "10.203.0.2:65536", "0.0.0.0/0")]
    [InlineData(ValidKey, "exit node.example:51820", "0.0.0.0/0")]
    [InlineData(ValidKey, "-exit.example:51820", "0.0.0.0/0")]
    [InlineData(ValidKey, "[10.203.0.2]:51820", "0.0.0.0/0")]
    [InlineData(ValidKey, "10.203.0.2:51820 peer", "0.0.0.0/0")]
    [InlineData(ValidKey, "", "0.0.0.0/0")]
    [InlineData(ValidKey, "10.203.0.2:51820", "")]
    public async Task Bad_exit_node_input_is_refused_before_anything_is_made(string publicKey, string endpoint, string allowedIps)
    {
        var segment = await _network.SegmentAsync("b", "10.202.6.1");
        var tunnelId = "bad-" + _network.Run;
        var peer = new WireGuardPeer(publicKey, endpoint, allowedIps.Length == 0 ? [] : [IPNetwork.Parse(allowedIps)], 25);
        using var key = WireGuardPrivateKey.Generate();

        await Assert.ThrowsAsync<ArgumentException>(() => WireGuardTunnel.AttachAsync(segment, new TunnelSpec(tunnelId, IPAddress.Parse("10.202.6.2"), TunnelAddress, 32, peer), key));

        Assert.Empty(await WireGuardTunnel.ListAsync(segment.Namespace));
        Assert.DoesNotContain(WireGuardTunnel.InterfaceNameFor(tunnelId), await AllLinksAsync(segment.Namespace));
        Assert.Equal(string.Empty, (await ScratchNetwork.ReadAsync("ip", "netns", "exec", segment.Namespace, "nft", "list", "tables")).Trim());
    }

    [Theory]
    [InlineData("../etc", "10.202.6.2", "10.77.0.2", 32)]
    [InlineData("ok", "fd00::2", "10.77.0.2", 32)]
    [InlineData("ok", "10.202.6.2", "10.77.0.2", 33)]
    [InlineData("ok", "10.202.6.2", "fd00::2", 128)]
    public async Task Bad_tunnel_input_is_refused_before_anything_is_made(string tunnelId, string machine, string tunnelAddress, int prefixLength)
    {
        var segment = await _network.SegmentAsync("i", "10.202.7.1");
        var peer = new WireGuardPeer(ValidKey, "10.203.0.2:51820", [IPNetwork.Parse("0.0.0.0/0")], 25);
        using var key = WireGuardPrivateKey.Generate();

        await Assert.ThrowsAsync<ArgumentException>(() => WireGuardTunnel.AttachAsync(segment, new TunnelSpec(tunnelId, IPAddress.Parse(machine), IPAddress.Parse(tunnelAddress), prefixLength, peer), key));

        Assert.Empty(await WireGuardTunnel.ListAsync(segment.Namespace));
        Assert.Equal(string.Empty, (await ScratchNetwork.ReadAsync("ip", "netns", "exec", segment.Namespace, "nft", "list", "tables")).Trim());
    }

    [Fact]
    public void A_private_key_never_shows_itself()
    {
        using var key = WireGuardPrivateKey.Generate();

        Assert.DoesNotContain("=", key.ToString(), StringComparison.Ordinal);
        Assert.Equal("(WireGuard private key)", $"{key}");
    }

    private const string ValidKey = "ZcIxjjr7VmlMuXz/aoF/gPUdgKBRcCLtxIA+wGMwmA0=";

    private async Task<WireGuardTunnel> AttachAsync(TenantSegment segment, string machine, string machineAddress, ExitNode exit, WireGuardPrivateKey key)
    {
        var tunnelId = $"tun-{machine}-{_network.Run}";
        _network.OnDispose(() => WireGuardTunnel.DetachAsync(segment.Namespace, WireGuardTunnel.InterfaceNameFor(tunnelId)));
        return await WireGuardTunnel.AttachAsync(
            segment,
            new TunnelSpec(tunnelId, IPAddress.Parse(machineAddress), TunnelAddress, 32, new WireGuardPeer(exit.PublicKey, exit.WireGuardEndpoint.ToString(), [IPNetwork.Parse("0.0.0.0/0")], 25)),
            key);
    }

    private static async Task<DateTimeOffset> FirstHandshakeAsync(WireGuardTunnel tunnel)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (true)
        {
            if (await tunnel.LatestHandshakeAsync() is { } handshake)
            {
                return handshake;
            }

            Assert.True(DateTime.UtcNow < deadline, "the tunnel shook hands with the exit node within 15 s");
            await Task.Delay(20);
        }
    }

    private static async Task AssertNothingLeftAsync(TenantSegment segment, WireGuardTunnel tunnel, int? daemon)
    {
        Assert.Empty(await WireGuardTunnel.ListAsync(segment.Namespace));
        Assert.DoesNotContain(tunnel.Interface, await AllLinksAsync(segment.Namespace));
        Assert.False(File.Exists($"/var/run/wireguard/{tunnel.Interface}.sock"), "the control socket is gone");
        Assert.Null(WireGuardInterface.DaemonOf(tunnel.Interface));
        if (daemon is { } pid)
        {
            var state = File.Exists($"/proc/{pid}/stat") ? (await File.ReadAllTextAsync($"/proc/{pid}/stat")).Split(") ")[1][0] : 'X';
            Assert.True(state is 'X' or 'Z', $"wireguard-go (process {pid}) has ended");
        }

        Assert.DoesNotContain($"lookup {tunnel.RoutingTable}", await ScratchNetwork.ReadAsync("ip", "-n", segment.Namespace, "rule", "show"), StringComparison.Ordinal);
        Assert.Equal(string.Empty, (await ScratchNetwork.ReadAsync("ip", "-n", segment.Namespace, "route", "show", "table", tunnel.RoutingTable.ToString(System.Globalization.CultureInfo.InvariantCulture))).Trim());
        Assert.Equal(string.Empty, (await ScratchNetwork.ReadAsync("ip", "netns", "exec", segment.Namespace, "nft", "list", "tables")).Trim());
        Assert.Equal("0", (await ScratchNetwork.ReadAsync("ip", "netns", "exec", segment.Namespace, "cat", "/proc/sys/net/ipv4/ip_forward")).Trim());
    }

    private static Func<CancellationToken, Task<System.Net.Sockets.Socket>> FromMachine(string machine, IPEndPoint server) =>
        cancellationToken => NetworkNamespace.Open(machine).ConnectAsync(server.Address, server.Port, cancellationToken);

    private static async Task<string> AllLinksAsync(string segment) => await ScratchNetwork.ReadAsync("ip", "link", "show") + await ScratchNetwork.ReadAsync("ip", "-n", segment, "link", "show");
}
