using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Platform.Provisioning.Drivers.Networking;

/// <summary>What to attach: which machine's egress goes through which exit node, under which tunnel address.</summary>
/// <param name="TunnelId">The tunnel's id; every object the tunnel makes is named from it.</param>
/// <param name="MachineAddress">The machine's address on the segment: traffic from it (and only it) goes through the tunnel.</param>
/// <param name="TunnelAddress">The tunnel's own address, which the exit node sees as the source (the exit node's allowed IPs for this peer).</param>
public sealed record TunnelSpec(string TunnelId, IPAddress MachineAddress, IPAddress TunnelAddress, int TunnelPrefixLength, WireGuardPeer ExitNode);

/// <summary>
/// A machine's egress through a WireGuard exit node. The interface is created in this process's namespace (the host's,
/// which holds the underlay), configured there, then moved into the tenant segment: WireGuard's UDP socket stays where
/// the interface was born (kernel and wireguard-go alike, wireguard-go noticing up and down across namespaces on its
/// own), so the segment needs no route to the underlay, tenant machines cannot reach the socket, and deleting the
/// segment takes the interface (and wireguard-go) with it. Run inside the segment instead, wireguard-go's socket
/// would keep a deleted segment's namespace alive, interface and all.
/// In the segment: the tunnel address on the interface, <c>ip rule from &lt;machine&gt; lookup &lt;table&gt;</c> with a
/// default route through the interface in that table, forwarding on, and an nftables table of the tunnel's own that
/// masquerades to the tunnel address, lets only the machine's traffic in, only replies out, and clamps TCP MSS.
/// </summary>
public sealed partial class WireGuardTunnel
{
    /// <summary>Every tunnel interface's name starts with this; the nftables table of a tunnel has its interface's name.</summary>
    public const string InterfacePrefix = "plwg";

    /// <summary>Tunnel rules sit here, after the uplink's (10000), so replies to the host never take the tunnel.</summary>
    public const int RulePriority = 20000;

    private WireGuardTunnel(string segment, string tunnelId, string @interface, WireGuardImplementation implementation, string publicKey)
    {
        Segment = segment;
        TunnelId = tunnelId;
        Interface = @interface;
        Implementation = implementation;
        PublicKey = publicKey;
    }

    public string Segment { get; }

    public string TunnelId { get; }

    public string Interface { get; }

    public int RoutingTable => RoutingTableFor(Interface);

    public WireGuardImplementation Implementation { get; }

    /// <summary>This end's public key: the exit node's peer for this tunnel.</summary>
    public string PublicKey { get; }

    /// <summary>The interface's name for a tunnel id: unique host-wide, as wireguard-go's socket directory needs.</summary>
    public static string InterfaceNameFor(string tunnelId)
    {
        RequireId(tunnelId);
        return StableName.For(InterfacePrefix, tunnelId, 10);
    }

    /// <summary>The routing table number of an interface's tunnel in its segment, derived from the name so leftovers can be found.</summary>
    public static int RoutingTableFor(string @interface) =>
        0x1000_0000 + int.Parse(@interface.AsSpan(InterfacePrefix.Length, 7), NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    /// <summary>
    /// Attaches the tunnel. Input is checked before anything is made; a tunnel of the same id is replaced; on any
    /// failure everything made so far is removed again.
    /// </summary>
    public static async Task<WireGuardTunnel> AttachAsync(TenantSegment segment, TunnelSpec spec, WireGuardPrivateKey privateKey)
    {
        Validate(spec);
        var name = InterfaceNameFor(spec.TunnelId);
        if (!NamespaceLinks.Exists(segment.Namespace))
        {
            throw new ArgumentException($"The segment {segment.Namespace} does not exist.", nameof(segment));
        }

        var implementation = await WireGuardInterface.ImplementationAsync();
        var publicKey = await privateKey.PublicKeyAsync();
        using (await SegmentForwarding.LockAsync(segment.Namespace))
        {
            await RemoveAsync(segment.Namespace, name);
            await RequireMachineFreeAsync(segment.Namespace, spec.MachineAddress);
            try
            {
                // The table goes first and comes off last: while any part exists, its name (the interface's) can be found.
                await Nftables.ApplyAsync(segment.Namespace, Ruleset(name, spec));
                await WireGuardInterface.CreateAsync(name);
                await WireGuardInterface.ConfigureAsync(name, privateKey, spec.ExitNode);
                await IpCommand.RunAsync("link", "set", name, "mtu", (await UnderlayMtuAsync(name) - 80).ToString(CultureInfo.InvariantCulture));
                await IpCommand.RunAsync("link", "set", name, "netns", segment.Namespace);
                await IpCommand.RunAsync("-n", segment.Namespace, "address", "add", $"{spec.TunnelAddress}/{spec.TunnelPrefixLength}", "dev", name);
                await IpCommand.RunAsync("-n", segment.Namespace, "link", "set", name, "up");
                var table = RoutingTableFor(name).ToString(CultureInfo.InvariantCulture);
                await IpCommand.RunAsync("-n", segment.Namespace, "route", "add", "default", "dev", name, "table", table);
                await IpCommand.RunAsync("-n", segment.Namespace, "rule", "add", "priority", RulePriority.ToString(CultureInfo.InvariantCulture), "from", spec.MachineAddress.ToString(), "lookup", table);
                await SegmentForwarding.UpdateAsync(segment.Namespace);
                return new WireGuardTunnel(segment.Namespace, spec.TunnelId, name, implementation, publicKey);
            }
            catch
            {
                await RemoveAsync(segment.Namespace, name);
                throw;
            }
        }
    }

    /// <summary>An attached tunnel known by id (one a previous process attached), to read its handshake or detach it.</summary>
    public static async Task<WireGuardTunnel> OpenAsync(TenantSegment segment, string tunnelId)
    {
        var name = InterfaceNameFor(tunnelId);
        var publicKey = await HostTool.RunAsync([.. HostTool.In(segment.Namespace), "wg", "show", name, "public-key"]);
        return new WireGuardTunnel(segment.Namespace, tunnelId, name, await WireGuardInterface.ImplementationAsync(), publicKey.Trim());
    }

    /// <summary>When this end last completed a handshake with the exit node; null before the first.</summary>
    public Task<DateTimeOffset?> LatestHandshakeAsync() => WireGuardInterface.LatestHandshakeAsync(Interface, Segment);

    /// <summary>Removes the interface, wireguard-go and its socket, the rule, the routes and the nftables table; gone already is fine.</summary>
    public async Task DetachAsync()
    {
        using (await SegmentForwarding.LockAsync(Segment))
        {
            await RemoveAsync(Segment, Interface);
        }
    }

    /// <summary>Removes whatever is left of a tunnel known only by its interface name (one that <see cref="ListAsync"/> found).</summary>
    public static async Task DetachAsync(string segment, string @interface)
    {
        RequireInterfaceName(@interface);
        using (await SegmentForwarding.LockAsync(segment))
        {
            await RemoveAsync(segment, @interface);
        }
    }

    /// <summary>
    /// The interface names of tunnels with any trace here: wireguard-go sockets and interfaces in this process's
    /// namespace (host-wide), and, in <paramref name="segment"/>, interfaces and nftables tables. A reconciler compares
    /// them with <see cref="InterfaceNameFor"/> of the tunnels that should exist and detaches the rest.
    /// </summary>
    public static async Task<IReadOnlyList<string>> ListAsync(string? segment = null)
    {
        var names = new SortedSet<string>(WireGuardInterface.ListUserspace(InterfacePrefix).Where(IsTunnelInterface), StringComparer.Ordinal);
        names.UnionWith((await NamespaceLinks.NamesAsync(null)).Where(IsTunnelInterface));
        if (segment is not null && NamespaceLinks.Exists(segment))
        {
            names.UnionWith((await NamespaceLinks.NamesAsync(segment)).Where(IsTunnelInterface));
            names.UnionWith((await Nftables.ListTablesAsync(segment, InterfacePrefix)).Where(IsTunnelInterface));
        }

        return names.ToArray();
    }

    private static async Task RemoveAsync(string segment, string name)
    {
        var table = RoutingTableFor(name).ToString(CultureInfo.InvariantCulture);
        if (NamespaceLinks.Exists(segment))
        {
            while ((await IpCommand.TryRunAsync("-n", segment, "rule", "delete", "priority", RulePriority.ToString(CultureInfo.InvariantCulture), "lookup", table)).ExitCode == 0)
            {
            }

            await IpCommand.TryRunAsync("-n", segment, "route", "flush", "table", table);
        }

        await WireGuardInterface.DeleteAsync(name, segment);
        if (NamespaceLinks.Exists(segment))
        {
            await Nftables.DeleteTableAsync(segment, name);
            await SegmentForwarding.UpdateAsync(segment);
        }
    }

    private static async Task RequireMachineFreeAsync(string segment, IPAddress machine)
    {
        var rules = await HostTool.RunAsync(["ip", "-n", segment, "rule", "show", "priority", RulePriority.ToString(CultureInfo.InvariantCulture)]);
        if (rules.Contains($"from {machine} ", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"{machine} in {segment} already goes through another tunnel; detach that first.");
        }
    }

    /// <summary>The MTU of the underlay link towards the exit node; the tunnel's is that less WireGuard's 80 bytes (as wg-quick does).</summary>
    private static async Task<int> UnderlayMtuAsync(string name)
    {
        var endpoint = (await WireGuardInterface.PeerEndpointsAsync(name)).FirstOrDefault()
            ?? throw new IOException($"wg resolved no endpoint for {name}.");
        var route = await HostTool.RunAsync(["ip", "-o", "route", "get", endpoint.Address.ToString()]);
        var device = RouteDevice().Match(route) is { Success: true } match ? match.Groups[1].Value : throw new IOException($"No route to the exit node {endpoint.Address}: {route.Trim()}");
        var mtu = int.Parse(await File.ReadAllTextAsync($"/sys/class/net/{device}/mtu"), CultureInfo.InvariantCulture);

        // An exit node on this host is reached over lo (65536), which says nothing about the path beyond.
        return Math.Min(mtu, 1500);
    }

    private static string Ruleset(string name, TunnelSpec spec) => $$"""
        table ip {{name}} {
            comment "tunnel={{spec.TunnelId}} machine={{spec.MachineAddress}}"
            chain postrouting {
                type nat hook postrouting priority srcnat; policy accept;
                oifname "{{name}}" masquerade
            }
            chain forward {
                type filter hook forward priority filter; policy accept;
                oifname "{{name}}" iifname != "{{TenantSegment.Bridge}}" drop
                oifname "{{name}}" ip saddr != {{spec.MachineAddress}} drop
                iifname "{{name}}" oifname != "{{TenantSegment.Bridge}}" drop
                iifname "{{name}}" ct state != { established, related } drop
                oifname "{{name}}" tcp flags syn tcp option maxseg size set rt mtu
            }
        }
        """;

    private static void Validate(TunnelSpec spec)
    {
        RequireId(spec.TunnelId);
        if (spec.MachineAddress.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new ArgumentException("A machine's address is IPv4.", nameof(spec));
        }

        if (spec.TunnelAddress.AddressFamily != AddressFamily.InterNetwork || spec.TunnelPrefixLength is < 1 or > 32)
        {
            throw new ArgumentException("A tunnel address is IPv4 with a prefix of 1 to 32 bits.", nameof(spec));
        }

        spec.ExitNode.Validate();
        if (spec.ExitNode.Endpoint is null)
        {
            throw new ArgumentException("An exit node has an endpoint.", nameof(spec));
        }
    }

    private static void RequireId(string id)
    {
        if (!SafeId().IsMatch(id))
        {
            throw new ArgumentException("A tunnel id is 1 to 64 letters, digits, '-' or '_'.", nameof(id));
        }
    }

    private static void RequireInterfaceName(string name)
    {
        if (!IsTunnelInterface(name))
        {
            throw new ArgumentException($"A tunnel's interface is {InterfacePrefix} and 10 hex digits.", nameof(name));
        }
    }

    private static bool IsTunnelInterface(string name) => TunnelInterface().IsMatch(name);

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex SafeId();

    [GeneratedRegex("^plwg[0-9a-f]{10}$")]
    private static partial Regex TunnelInterface();

    [GeneratedRegex(@"\bdev (\S+)")]
    private static partial Regex RouteDevice();
}
