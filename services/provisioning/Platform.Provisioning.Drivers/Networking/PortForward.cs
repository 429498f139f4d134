using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Platform.Provisioning.Drivers.Networking;

/// <summary>Where host ports for forwards come from, and the network segments' uplinks take their /30s from.</summary>
/// <remarks>
/// Keep the port range out of the kernel's ephemeral range (net.ipv4.ip_local_port_range) or reserve it
/// (net.ipv4.ip_local_reserved_ports): once forwarded, a port's TCP traffic to this host goes to the machine, even if
/// some process binds the port later.
/// </remarks>
public sealed record PortForwardOptions(int FirstPort, int LastPort, IPNetwork TransferNetwork);

/// <summary>
/// A TCP port of a machine in a tenant segment, exposed on a port of every host address (127.0.0.1 included). The
/// host's nftables table for the forward (named from the forward's id) translates connections to that port, in
/// prerouting for other hosts' clients and in output for this host's own, to the segment's transfer address over its
/// <see cref="SegmentUplink"/> and masquerades them there; the segment's table of the same name translates them on to
/// the machine. So the machine sees the uplink's host address as the client. Clients on other hosts also need the
/// host's own forwarding switched on (net.ipv4.ip_forward), which this class leaves to the host's setup.
/// </summary>
public sealed partial class PortForward
{
    public const string TablePrefix = "plfwd-";

    private static readonly SemaphoreSlim PortChoice = new(1, 1);

    private PortForward(string? forwardId, string segment, IPAddress endpoint, int endpointPort, int hostPort)
    {
        ForwardId = forwardId;
        Segment = segment;
        Endpoint = endpoint;
        EndpointPort = endpointPort;
        HostPort = hostPort;
    }

    /// <summary>The forward's id; null for one that <see cref="ListAsync"/> found, which knows only its table (named from the id).</summary>
    public string? ForwardId { get; }

    public string Segment { get; }

    public IPAddress Endpoint { get; }

    public int EndpointPort { get; }

    public int HostPort { get; }

    /// <summary>The nftables table this forward owns, on the host and in its segment.</summary>
    public string Table { get; private init; } = string.Empty;
    /// <summary>The nftables table (on the host and in the segment) of a forward id.</summary>
    public static string TableNameFor(string forwardId)
    {
        RequireId(forwardId);
        return StableName.For(TablePrefix, forwardId, 10);
    }

    /// <summary>
    /// Forwards a free host port from the range to <paramref name="endpoint"/>:<paramref name="endpointPort"/>. A port
    /// is free when no forward holds it and this host lets us bind it (TCP, IPv4 and IPv6). Adding the same forward
    /// again returns it; the same id for another target is refused. On failure nothing is left behind.
    /// </summary>
    public static async Task<PortForward> AddAsync(TenantSegment segment, string forwardId, IPAddress endpoint, int endpointPort, PortForwardOptions options)
    {
        var table = TableNameFor(forwardId);
        if (endpoint.AddressFamily != AddressFamily.InterNetwork || endpointPort is < 1 or > 65535)
        {
            throw new ArgumentException("An endpoint is an IPv4 address and a port of 1 to 65535.", nameof(endpoint));
        }

        if (options.FirstPort is < 1 or > 65535 || options.LastPort < options.FirstPort || options.LastPort > 65535)
        {
            throw new ArgumentException("A host port range is 1 to 65535, its first port no later than its last.", nameof(options));
        }

        SegmentUplink.RequireTransferNetwork(options.TransferNetwork);
        if (!NamespaceLinks.Exists(segment.Namespace))
        {
            throw new ArgumentException($"The segment {segment.Namespace} does not exist.", nameof(segment));
        }

        using (await SegmentForwarding.LockAsync(segment.Namespace))
        {
            if (Parse(table, await Nftables.CommentAsync(null, table), forwardId) is { } existing)
            {
                return existing.Segment == segment.Namespace && existing.Endpoint.Equals(endpoint) && existing.EndpointPort == endpointPort
                    ? existing
                    : throw new InvalidOperationException($"The forward {forwardId} exists for {existing.Segment} {existing.Endpoint}:{existing.EndpointPort}; remove it first.");
            }

            try
            {
                var uplink = await SegmentUplink.EnsureAsync(segment.Namespace, options.TransferNetwork);
                var forward = await ClaimHostPortAsync(segment.Namespace, forwardId, table, endpoint, endpointPort, uplink, options);
                await Nftables.ApplyAsync(segment.Namespace, SegmentRuleset(table, forward, uplink));
                return forward;
            }
            catch
            {
                await RemoveCoreAsync(table, segment.Namespace);
                throw;
            }
        }
    }

    /// <summary>Removes the forward, and its segment's uplink when it was the segment's last.</summary>
    public Task RemoveAsync() => RemoveTableAsync(Table);

    /// <summary>Removes a forward known by id; gone already is fine.</summary>
    public static Task RemoveAsync(string forwardId) => RemoveTableAsync(TableNameFor(forwardId));

    /// <summary>
    /// The forwards on this host, read from the host's tables (each keeps its segment, target and port in its
    /// comment). A reconciler compares their tables with <see cref="TableNameFor"/> of the forwards that should exist,
    /// and removes the rest; uplinks of segments without forwards are in <see cref="SegmentUplink.ListAsync"/>.
    /// </summary>
    public static async Task<IReadOnlyList<PortForward>> ListAsync()
    {
        var forwards = new List<PortForward>();
        foreach (var table in await Nftables.ListTablesAsync(null, TablePrefix))
        {
            forwards.Add(Parse(table, await Nftables.CommentAsync(null, table))
                ?? new PortForward(null, string.Empty, IPAddress.Any, 0, 0) { Table = table });
        }

        return forwards;
    }
    private static async Task RemoveTableAsync(string table)
    {
        var segment = Parse(table, await Nftables.CommentAsync(null, table))?.Segment;
        if (segment is null || segment.Length == 0)
        {
            await Nftables.DeleteTableAsync(null, table);
            return;
        }

        using (await SegmentForwarding.LockAsync(segment))
        {
            await RemoveCoreAsync(table, segment);
        }
    }

    private static async Task RemoveCoreAsync(string table, string segment)
    {
        // The segment's half first: while any part of a forward exists, the host's table (with the segment in its comment) does.
        if (NamespaceLinks.Exists(segment))
        {
            await Nftables.DeleteTableAsync(segment, table);
        }

        await Nftables.DeleteTableAsync(null, table);
        if (!NamespaceLinks.Exists(segment) || (await Nftables.ListTablesAsync(segment, TablePrefix)).Count == 0)
        {
            await SegmentUplink.RemoveAsync(segment);
        }
    }

    /// <summary>Chooses the port and writes the host's table under one lock, so two forwards never choose the same port.</summary>
    private static async Task<PortForward> ClaimHostPortAsync(
        string segment, string forwardId, string table, IPAddress endpoint, int endpointPort, SegmentUplink uplink, PortForwardOptions options)
    {
        await PortChoice.WaitAsync();
        try
        {
            var forwarded = (await ListAsync()).Select(f => f.HostPort).ToHashSet();
            for (var port = options.FirstPort; port <= options.LastPort; port++)
            {
                if (forwarded.Contains(port) || !CanBind(port))
                {
                    continue;
                }

                var forward = new PortForward(forwardId, segment, endpoint, endpointPort, port) { Table = table };
                await Nftables.ApplyAsync(null, HostRuleset(forward, uplink));
                return forward;
            }

            throw new InvalidOperationException($"No port from {options.FirstPort} to {options.LastPort} is free on this host.");
        }
        finally
        {
            PortChoice.Release();
        }
    }

    /// <summary>
    /// Whether this host lets us bind the TCP port on every address: a table of ours cannot know about other
    /// programs' listeners. (Binding the wildcard fails while anyone listens on the port at any address.)
    /// </summary>
    private static bool CanBind(int port)
    {
        foreach (var any in Socket.OSSupportsIPv6 ? new[] { IPAddress.Any, IPAddress.IPv6Any } : [IPAddress.Any])
        {
            using var probe = new Socket(any.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            if (any.AddressFamily == AddressFamily.InterNetworkV6)
            {
                probe.DualMode = false;
            }

            try
            {
                probe.Bind(new IPEndPoint(any, port));
            }
            catch (SocketException)
            {
                return false;
            }
        }

        return true;
    }

    private static string HostRuleset(PortForward forward, SegmentUplink uplink) => $$"""
        table ip {{forward.Table}} {
            comment "{{Comment(forward)}}"
            chain prerouting {
                type nat hook prerouting priority dstnat; policy accept;
                iifname != "{{uplink.HostLink}}" fib daddr type local tcp dport {{forward.HostPort}} dnat to {{uplink.SegmentAddress}}:{{forward.HostPort}}
            }
            chain output {
                type nat hook output priority -100; policy accept;
                fib daddr type local tcp dport {{forward.HostPort}} dnat to {{uplink.SegmentAddress}}:{{forward.HostPort}}
            }
            chain postrouting {
                type nat hook postrouting priority srcnat; policy accept;
                oifname "{{uplink.HostLink}}" ip daddr {{uplink.SegmentAddress}} tcp dport {{forward.HostPort}} masquerade
            }
        }
        """;

    private static string SegmentRuleset(string table, PortForward forward, SegmentUplink uplink) => $$"""
        table ip {{table}} {
            comment "{{Comment(forward)}}"
            chain prerouting {
                type nat hook prerouting priority dstnat; policy accept;
                iifname "{{SegmentUplink.SegmentEnd}}" ip daddr {{uplink.SegmentAddress}} tcp dport {{forward.HostPort}} dnat to {{forward.Endpoint}}:{{forward.EndpointPort}}
            }
        }
        """;

    private static string Comment(PortForward forward) =>
        FormattableString.Invariant($"segment={forward.Segment} endpoint={forward.Endpoint}:{forward.EndpointPort} hostport={forward.HostPort}");

    private static PortForward? Parse(string table, string? comment, string? forwardId = null) =>
        comment is not null && CommentFields().Match(comment) is { Success: true } match
            ? new PortForward(
                forwardId,
                match.Groups["segment"].Value,
                IPAddress.Parse(match.Groups["address"].Value),
                int.Parse(match.Groups["port"].Value, CultureInfo.InvariantCulture),
                int.Parse(match.Groups["hostport"].Value, CultureInfo.InvariantCulture)) { Table = table }
            : null;

    private static void RequireId(string id)
    {
        if (!SafeId().IsMatch(id))
        {
            throw new ArgumentException("A forward id is 1 to 64 letters, digits, '-' or '_'.", nameof(id));
        }
    }

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex SafeId();

    [GeneratedRegex(@"^segment=(?<segment>\S+) endpoint=(?<address>[0-9.]+):(?<port>\d+) hostport=(?<hostport>\d+)$")]
    private static partial Regex CommentFields();
}
