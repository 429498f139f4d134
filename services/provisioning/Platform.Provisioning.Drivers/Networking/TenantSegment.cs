using System.Net;
using System.Text.RegularExpressions;

namespace Platform.Provisioning.Drivers.Networking;

/// <summary>
/// One tenant's network on this host: a namespace of its own holding a bridge (<c>br0</c>) that carries
/// the tenant subnet's gateway address. Its machines are ports on that bridge (a tap for a micro-VM, whose
/// QEMU runs in this namespace; a veth whose other end is a sandbox's or endpoint's <c>eth0</c>), so a
/// tenant's machines reach each other and nothing else: another tenant's segment is another namespace,
/// with no link and no route between them. Forwarding beyond the bridge is on only while the segment holds a
/// tunnel or an uplink (see docs/drivers/datapath.md), and then only for what those admit.
/// </summary>
public sealed partial class TenantSegment
{
    public const string Bridge = "br0";

    /// <summary>Every host agent's segments are named so: the agent's part keeps agents sharing a machine (tests, a second host) out of each other's.</summary>
    public const string AgentPrefix = "pls-";

    /// <summary>The namespace of <paramref name="tenantId"/>'s segment on the host agent <paramref name="hostId"/>.</summary>
    public static string NameFor(Guid hostId, Guid tenantId) => StableName.For(PrefixOf(hostId), tenantId.ToString(), 12);

    /// <summary>What the names of every segment of <paramref name="hostId"/> start with.</summary>
    public static string PrefixOf(Guid hostId) => StableName.For(AgentPrefix, hostId.ToString(), 6) + "-";

    private TenantSegment(string name) => Namespace = name;

    public string Namespace { get; }

    /// <summary>Makes the segment, or finds it made already (idempotent: the bridge and address are checked, not assumed).</summary>
    public static async Task<TenantSegment> EnsureAsync(string name, IPAddress gateway, int prefixLength)
    {
        if (!SafeName().IsMatch(name))
        {
            throw new ArgumentException("A segment name is 1 to 64 letters, digits, '-' or '_'.", nameof(name));
        }

        var segment = new TenantSegment(name);
        if (!(await NetworkNamespace.ListAsync(name)).Contains(name))
        {
            await IpCommand.RunAsync("netns", "add", name);
        }

        try
        {
            if ((await IpCommand.TryRunAsync("-n", name, "link", "show", Bridge)).ExitCode != 0)
            {
                await IpCommand.RunAsync("-n", name, "link", "add", Bridge, "type", "bridge");
            }

            await IpCommand.TryRunAsync("-n", name, "address", "add", $"{gateway}/{prefixLength}", "dev", Bridge);
            await IpCommand.RunAsync("-n", name, "link", "set", "lo", "up");
            await IpCommand.RunAsync("-n", name, "link", "set", Bridge, "up");
            return segment;
        }
        catch
        {
            await segment.DeleteAsync();
            throw;
        }
    }

    /// <summary>
    /// Plugs a namespace into the segment: a veth pair, one end a port of the bridge, the other moved into
    /// <paramref name="endpointNamespace"/> as <c>eth0</c> with <paramref name="address"/> and a default route
    /// via the gateway. Returns the port's name (the handle to unplug it).
    /// </summary>
    public async Task<string> PlugAsync(string endpointNamespace, IPAddress address, int prefixLength, IPAddress gateway)
    {
        var port = "ve-" + Guid.NewGuid().ToString("N")[..10];
        var peer = "vp-" + port[3..];
        try
        {
            // Two processes, one per namespace, rather than one per step: plugging is on every sandbox's way to running.
            await IpCommand.RunBatchAsync(Namespace,
                ["link", "add", port, "type", "veth", "peer", "name", peer],
                ["link", "set", port, "master", Bridge, "up"],
                ["link", "set", peer, "netns", endpointNamespace]);
            await IpCommand.RunBatchAsync(endpointNamespace,
                ["link", "set", peer, "name", "eth0"],
                ["address", "add", $"{address}/{prefixLength}", "dev", "eth0"],
                ["link", "set", "lo", "up"],
                ["link", "set", "eth0", "up"],
                ["route", "add", "default", "via", gateway.ToString()]);
            return port;
        }
        catch
        {
            await UnplugAsync(port);
            throw;
        }
    }

    /// <summary>
    /// Joins a tap in another namespace to the segment at layer 2: the tap (a micro-VM's, in the machine's own
    /// namespace) loses its addresses and goes onto a bridge of that namespace, which a veth links to this segment's
    /// bridge. The machine keeps its address and now reaches its tenant's other machines and the segment's gateway;
    /// a gratuitous ARP tells it the gateway's address moved to the segment. Returns the segment's port.
    /// </summary>
    public async Task<string> BridgeAsync(string endpointNamespace, string tap, IPAddress gateway)
    {
        var port = "ve-" + Guid.NewGuid().ToString("N")[..10];
        var peer = "vp-" + port[3..];
        try
        {
            await IpCommand.RunBatchAsync(Namespace,
                ["link", "add", port, "type", "veth", "peer", "name", peer],
                ["link", "set", port, "master", Bridge, "up"],
                ["link", "set", peer, "netns", endpointNamespace]);
            var hasBridge = (await IpCommand.TryRunAsync("-n", endpointNamespace, "link", "show", Bridge)).ExitCode == 0;
            await IpCommand.RunBatchAsync(endpointNamespace,
            [
                ["link", "set", peer, "name", "segment"],
                .. hasBridge ? Array.Empty<string[]>() : [["link", "add", Bridge, "type", "bridge"]],
                ["address", "flush", "dev", tap],
                ["link", "set", tap, "master", Bridge],
                ["link", "set", "segment", "master", Bridge, "up"],
                ["link", "set", Bridge, "up"],
            ]);
            // The machine learnt the gateway at the tap's address while it booted; tell it the gateway is the segment's now.
            await HostTool.TryRunAsync([.. HostTool.In(Namespace), "busybox", "arping", "-U", "-c", "1", "-s", gateway.ToString(), "-I", Bridge, gateway.ToString()]);
            return port;
        }
        catch
        {
            await UnplugAsync(port);
            throw;
        }
    }

    /// <summary>A tap on the bridge for a micro-VM whose QEMU runs in this namespace.</summary>
    public async Task<string> AddTapAsync()
    {
        var tap = "tap-" + Guid.NewGuid().ToString("N")[..10];
        await IpCommand.RunAsync("-n", Namespace, "tuntap", "add", "dev", tap, "mode", "tap");
        await IpCommand.RunAsync("-n", Namespace, "link", "set", tap, "master", Bridge, "up");
        return tap;
    }

    /// <summary>Removes a port (veth, with its peer, or tap); gone already is fine.</summary>
    public async Task UnplugAsync(string port) => await IpCommand.TryRunAsync("-n", Namespace, "link", "delete", port);

    /// <summary>Removes the segment and every port on it; gone already is fine.</summary>
    public async Task DeleteAsync() => await NetworkNamespace.DeleteAsync(Namespace);

    public static TenantSegment Open(string name) =>
        SafeName().IsMatch(name) ? new TenantSegment(name) : throw new ArgumentException("A segment name is 1 to 64 letters, digits, '-' or '_'.", nameof(name));

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex SafeName();
}
