using System.Diagnostics;
using System.Net;
using Platform.Provisioning.Drivers.Networking;

namespace Platform.Provisioning.Tests;

/// <summary>An exit node as a test plays it: a namespace reached over a veth from the host, with a server behind its WireGuard interface.</summary>
public sealed record ExitNode(string Namespace, string Interface, string PublicKey, IPEndPoint WireGuardEndpoint, IPEndPoint Server);

/// <summary>
/// The namespaces, links and servers one test makes (names start with pmt-, WireGuard interfaces with pmtwg; the objects the driver makes with plwg, plup, plfwd-), all
/// removed when the test ends, pass or fail: last made, first removed.
/// </summary>
public sealed class ScratchNetwork : IAsyncDisposable
{
    private readonly Stack<Func<Task>> _cleanups = new();

    public string Run { get; } = Guid.NewGuid().ToString("N")[..6];

    public void OnDispose(Func<Task> cleanup) => _cleanups.Push(cleanup);

    public async Task<TenantSegment> SegmentAsync(string tenant, string gateway)
    {
        var name = $"pmt-seg-{tenant}-{Run}";
        OnDispose(() => NetworkNamespace.DeleteAsync(name));
        return await TenantSegment.EnsureAsync(name, IPAddress.Parse(gateway), 24);
    }

    /// <summary>A namespace plugged into the segment: a machine as far as the network can tell.</summary>
    public async Task<string> MachineAsync(TenantSegment segment, string name, string address, string gateway)
    {
        var machine = $"pmt-ep-{name}-{Run}";
        OnDispose(() => NetworkNamespace.DeleteAsync(machine));
        await IpCommand.RunAsync("netns", "add", machine);
        await segment.PlugAsync(machine, IPAddress.Parse(address), 24, IPAddress.Parse(gateway));
        return machine;
    }

    public async Task<SourceAddressServer> ServerAsync(string networkNamespace, IPAddress address, int port)
    {
        var server = await SourceAddressServer.StartAsync(networkNamespace, address, port);
        OnDispose(async () => await server.DisposeAsync());
        return server;
    }

    /// <summary>
    /// An exit node whose WireGuard interface (port 51820) knows the machine's public key and tunnel address, and a
    /// server on 198.51.100.10:8080 behind it, reachable only through the tunnel.
    /// </summary>
    public async Task<ExitNode> ExitNodeAsync(string machinePublicKey, IPAddress tunnelAddress)
    {
        var name = $"pmt-exit-{Run}";
        OnDispose(() => NetworkNamespace.DeleteAsync(name));
        await IpCommand.RunAsync("netns", "add", name);

        var hostEnd = $"pmt-ul{Run}";
        var block = Random.Shared.Next(0, 64) * 4;
        var hostAddress = $"10.203.{Random.Shared.Next(0, 256)}.{block + 1}";
        var exitAddress = IPAddress.Parse(hostAddress[..(hostAddress.LastIndexOf('.') + 1)] + (block + 2));
        OnDispose(async () => await IpCommand.TryRunAsync("link", "delete", hostEnd));
        await IpCommand.RunAsync("link", "add", hostEnd, "type", "veth", "peer", "name", "eth0", "netns", name);
        await IpCommand.RunAsync("address", "add", hostAddress + "/30", "dev", hostEnd);
        await IpCommand.RunAsync("link", "set", hostEnd, "up");
        await IpCommand.RunAsync("-n", name, "address", "add", exitAddress + "/30", "dev", "eth0");
        await IpCommand.RunAsync("-n", name, "link", "set", "eth0", "up");
        await IpCommand.RunAsync("-n", name, "link", "set", "lo", "up");

        // Before the namespace goes: wireguard-go's socket in it would keep it (and the daemon) alive, unnamed.
        var wireGuard = $"pmtwgx{Run}";
        OnDispose(() => WireGuardInterface.DeleteAsync(wireGuard, name));
        await WireGuardInterface.CreateAsync(wireGuard, name);
        using var key = WireGuardPrivateKey.Generate();
        await WireGuardInterface.ConfigureAsync(wireGuard, key, new WireGuardPeer(machinePublicKey, null, [new IPNetwork(tunnelAddress, 32)]), 51820, name);
        await IpCommand.RunAsync("-n", name, "address", "add", "10.77.0.1/24", "dev", wireGuard);
        await IpCommand.RunAsync("-n", name, "link", "set", wireGuard, "up");

        var server = new IPEndPoint(IPAddress.Parse("198.51.100.10"), 8080);
        await IpCommand.RunAsync("-n", name, "address", "add", server.Address + "/32", "dev", "lo");
        await ServerAsync(name, server.Address, server.Port);
        return new ExitNode(name, wireGuard, await key.PublicKeyAsync(), new IPEndPoint(exitAddress, 51820), server);
    }

    /// <summary>What a host tool prints; asked again when a netlink dump was interrupted by the other tests' changes.</summary>
    public static async Task<string> ReadAsync(params string[] command)
    {
        for (var attempt = 1; ; attempt++)
        {
            using var process = Process.Start(new ProcessStartInfo(command[0], command[1..]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var text = process.StandardOutput.ReadToEndAsync();
            var errors = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            if (process.ExitCode == 0)
            {
                return await text;
            }

            Assert.True(attempt < 3, $"{string.Join(' ', command)} failed ({process.ExitCode}): {await errors}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        var failures = new List<Exception>();
        while (_cleanups.TryPop(out var cleanup))
        {
            try
            {
                await cleanup();
            }
            catch (Exception exception)
            {
                failures.Add(exception);
            }
        }

        if (failures.Count > 0)
        {
            throw new AggregateException("Cleaning up after the test failed.", failures);
        }
    }
}
