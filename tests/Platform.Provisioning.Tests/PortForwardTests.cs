using System.Diagnostics;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Platform.Provisioning.Drivers.Networking;

namespace Platform.Provisioning.Tests;

/// <summary>Host ports forwarded into tenant segments with real namespaces and nftables, proved with real TCP connections.</summary>
public sealed class PortForwardTests : IAsyncLifetime
{
    private readonly ScratchNetwork _network = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _network.DisposeAsync();

    /// <summary>
    /// Ports below the kernel's ephemeral range, from a region of a thousand a test class has to itself (classes run
    /// in parallel), different for each run; and a transfer network for tests.
    /// </summary>
    public static PortForwardOptions Options(string run, int count = 10, int region = 28000)
    {
        var first = region + (Convert.ToInt32(run[..3], 16) % 90 * 10);
        return new PortForwardOptions(first, first + count - 1, IPNetwork.Parse("169.254.240.0/24"));
    }

    [Fact]
    public async Task A_forward_reaches_a_server_in_a_machine_from_localhost_and_the_hosts_address_until_it_is_removed()
    {
        var segment = await _network.SegmentAsync("f", "10.202.2.1");
        var machine = await _network.MachineAsync(segment, "f1", "10.202.2.2", "10.202.2.1");
        await _network.ServerAsync(machine, IPAddress.Parse("10.202.2.2"), 8080);
        var forwardId = "fwd-f1-" + _network.Run;
        _network.OnDispose(() => PortForward.RemoveAsync(forwardId));

        var forward = await PortForward.AddAsync(segment, forwardId, IPAddress.Parse("10.202.2.2"), 8080, Options(_network.Run));

        var uplink = (await SegmentUplink.ListAsync()).Single(u => u.Segment == segment.Namespace);
        Assert.Equal(uplink.HostAddress.ToString(), await SourceAddressServer.AskAsync(SourceAddressServer.FromHost(IPAddress.Loopback, forward.HostPort)));
        Assert.Equal(uplink.HostAddress.ToString(), await SourceAddressServer.AskAsync(SourceAddressServer.FromHost(HostAddress(), forward.HostPort)));
        Assert.Contains(await PortForward.ListAsync(), f => f.Table == PortForward.TableNameFor(forwardId) && f.HostPort == forward.HostPort && f.Segment == segment.Namespace);
        Assert.Equal(forward.HostPort, (await PortForward.AddAsync(segment, forwardId, IPAddress.Parse("10.202.2.2"), 8080, Options(_network.Run))).HostPort);
        // Even when the host routes the tenant's subnet (so that replies would find their way back), a machine
        // cannot open a connection to the host over the uplink.
        using var hostService = new TcpListener(IPAddress.Any, 0);
        hostService.Start();
        _network.OnDispose(async () => await IpCommand.TryRunAsync("route", "delete", "10.202.2.0/24"));
        await IpCommand.RunAsync("route", "add", "10.202.2.0/24", "via", uplink.SegmentAddress.ToString());
        Assert.False(
            await SourceAddressServer.ReachableAsync(FromMachine(machine, uplink.HostAddress, ((IPEndPoint)hostService.LocalEndpoint).Port)),
            "a machine cannot open connections to the host over the uplink");

        await IpCommand.RunAsync("route", "delete", "10.202.2.0/24");
        await forward.RemoveAsync();

        Assert.False(await SourceAddressServer.ReachableAsync(SourceAddressServer.FromHost(IPAddress.Loopback, forward.HostPort)), "the port is closed again");
        Assert.DoesNotContain(await PortForward.ListAsync(), f => f.Table == forward.Table);
        Assert.DoesNotContain(await SegmentUplink.ListAsync(), u => u.Segment == segment.Namespace);
        Assert.DoesNotContain(SegmentUplink.HostLinkFor(segment.Namespace), await ScratchNetwork.ReadAsync("ip", "link", "show"), StringComparison.Ordinal);
        Assert.DoesNotContain(SegmentUplink.SegmentEnd, await ScratchNetwork.ReadAsync("ip", "-n", segment.Namespace, "link", "show"), StringComparison.Ordinal);
        Assert.DoesNotContain(forward.Table, await ScratchNetwork.ReadAsync("nft", "list", "tables"), StringComparison.Ordinal);
        Assert.Equal(string.Empty, (await ScratchNetwork.ReadAsync("ip", "netns", "exec", segment.Namespace, "nft", "list", "tables")).Trim());
        Assert.DoesNotContain($"{SegmentUplink.RulePriority}:", await ScratchNetwork.ReadAsync("ip", "-n", segment.Namespace, "rule", "show"), StringComparison.Ordinal);
        Assert.Equal("0", (await ScratchNetwork.ReadAsync("ip", "netns", "exec", segment.Namespace, "cat", "/proc/sys/net/ipv4/ip_forward")).Trim());
    }

    [Fact]
    public async Task A_port_that_another_program_holds_is_never_handed_out()
    {
        var segment = await _network.SegmentAsync("t", "10.202.8.1");
        await _network.MachineAsync(segment, "t1", "10.202.8.2", "10.202.8.1");
        var options = Options(_network.Run, count: 3);

        // One port held in this process on 127.0.0.1 only, one by another process on every address.
        using var listener = new TcpListener(IPAddress.Loopback, options.FirstPort);
        listener.Start();
        using var other = await HoldPortAsync(options.FirstPort + 1);
        var first = "fwd-t1-" + _network.Run;
        var second = "fwd-t2-" + _network.Run;
        _network.OnDispose(() => PortForward.RemoveAsync(first));
        _network.OnDispose(() => PortForward.RemoveAsync(second));

        var forward = await PortForward.AddAsync(segment, first, IPAddress.Parse("10.202.8.2"), 8080, options);

        Assert.Equal(options.FirstPort + 2, forward.HostPort);
        await Assert.ThrowsAsync<InvalidOperationException>(() => PortForward.AddAsync(segment, second, IPAddress.Parse("10.202.8.2"), 8081, options));
        Assert.DoesNotContain(await PortForward.ListAsync(), f => f.Table == PortForward.TableNameFor(second));
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, options.FirstPort);
        using var accepted = await listener.AcceptTcpClientAsync();
        Assert.True(accepted.Connected, "the listener keeps its port");
    }

    [Fact]
    public async Task A_forward_whose_segment_was_deleted_is_found_and_removed()
    {
        var segment = await _network.SegmentAsync("g", "10.202.11.1");
        var forwardId = "fwd-g1-" + _network.Run;
        _network.OnDispose(() => PortForward.RemoveAsync(forwardId));
        var forward = await PortForward.AddAsync(segment, forwardId, IPAddress.Parse("10.202.11.2"), 8080, Options(_network.Run));

        await segment.DeleteAsync();

        var leftover = Assert.Single(await PortForward.ListAsync(), f => f.Table == PortForward.TableNameFor(forwardId));
        Assert.Equal((segment.Namespace, forward.HostPort, "10.202.11.2", 8080), (leftover.Segment, leftover.HostPort, leftover.Endpoint.ToString(), leftover.EndpointPort));
        await leftover.RemoveAsync();
        Assert.DoesNotContain(forward.Table, await ScratchNetwork.ReadAsync("nft", "list", "tables"), StringComparison.Ordinal);
        Assert.DoesNotContain(await SegmentUplink.ListAsync(), u => u.Segment == segment.Namespace);
    }

    [Fact]
    public async Task Bad_forward_input_is_refused_before_anything_is_made()
    {
        var segment = await _network.SegmentAsync("x", "10.202.9.1");
        var options = Options(_network.Run);

        await Assert.ThrowsAsync<ArgumentException>(() => PortForward.AddAsync(segment, "no spaces", IPAddress.Parse("10.202.9.2"), 80, options));
        await Assert.ThrowsAsync<ArgumentException>(() => PortForward.AddAsync(segment, "f", IPAddress.Parse("fd00::2"), 80, options));
        await Assert.ThrowsAsync<ArgumentException>(() => PortForward.AddAsync(segment, "f", IPAddress.Parse("10.202.9.2"), 0, options));
        await Assert.ThrowsAsync<ArgumentException>(() => PortForward.AddAsync(segment, "f", IPAddress.Parse("10.202.9.2"), 80, options with { LastPort = options.FirstPort - 1 }));
        await Assert.ThrowsAsync<ArgumentException>(() => PortForward.AddAsync(segment, "f", IPAddress.Parse("10.202.9.2"), 80, options with { TransferNetwork = IPNetwork.Parse("169.254.240.0/31") }));
        await Assert.ThrowsAsync<ArgumentException>(() => PortForward.AddAsync(TenantSegment.Open("pmt-seg-gone-" + _network.Run), "f", IPAddress.Parse("10.202.9.2"), 80, options));

        Assert.DoesNotContain(await SegmentUplink.ListAsync(), u => u.Segment == segment.Namespace);
        Assert.Equal(string.Empty, (await ScratchNetwork.ReadAsync("ip", "netns", "exec", segment.Namespace, "nft", "list", "tables")).Trim());
    }

    /// <summary>A python3 process listening on the port on every address, until disposed.</summary>
    private static async Task<HeldPort> HoldPortAsync(int port)
    {
        var holder = Process.Start(new ProcessStartInfo("python3", ["-c", $"import socket, sys\ns = socket.socket()\ns.bind(('0.0.0.0', {port}))\ns.listen()\nprint('ready', flush=True)\nsys.stdin.read()"])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
        })!;
        Assert.Equal("ready", await holder.StandardOutput.ReadLineAsync());
        return new HeldPort(holder);
    }

    private static IPAddress HostAddress() =>
        NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback && !n.Name.StartsWith("pmt", StringComparison.Ordinal))
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .First(a => a.AddressFamily == AddressFamily.InterNetwork);

    private static Func<CancellationToken, Task<Socket>> FromMachine(string machine, IPAddress address, int port) =>
        cancellationToken => NetworkNamespace.Open(machine).ConnectAsync(address, port, cancellationToken);

    private sealed class HeldPort(Process holder) : IDisposable
    {
        public void Dispose()
        {
            // It reads its input to the end, then exits.
            holder.StandardInput.Close();
            if (!holder.WaitForExit(5000))
            {
                holder.Kill();
            }

            holder.Dispose();
        }
    }
}
