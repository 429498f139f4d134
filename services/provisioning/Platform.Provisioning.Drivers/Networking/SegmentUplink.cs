using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Platform.Provisioning.Drivers.Networking;

/// <summary>
/// A tenant segment's way in from the host, which port forwards use: a veth pair, its host end named from the
/// segment (<c>plup</c> and 9 hex digits, the segment's name in its alias) and its other end <c>uplink</c> in the
/// segment, on a /30 of its own from a transfer network (host .1, segment .2). The host never learns a tenant's
/// subnet (tenants' subnets may overlap): it sends forwarded connections to the segment's transfer address, and the
/// segment sends them on to the machine. In the segment, an nftables table lets through the uplink only connections
/// that a forward translated and their replies, so machines cannot open anything towards the host; and a rule
/// ahead of the tunnels' sends replies to the host back over the uplink, not into a machine's tunnel.
/// </summary>
public sealed partial class SegmentUplink
{
    public const string HostPrefix = "plup";
    public const string SegmentEnd = "uplink";
    public const string GuardTable = "plup";

    /// <summary>Ahead of <see cref="WireGuardTunnel.RulePriority"/>.</summary>
    public const int RulePriority = 10000;

    private static readonly SemaphoreSlim Allocation = new(1, 1);

    private SegmentUplink(string segment, string hostLink, IPAddress hostAddress, IPAddress segmentAddress)
    {
        Segment = segment;
        HostLink = hostLink;
        HostAddress = hostAddress;
        SegmentAddress = segmentAddress;
    }

    public string Segment { get; }

    public string HostLink { get; }

    /// <summary>The host end's address: what machines see as the source of forwarded connections.</summary>
    public IPAddress HostAddress { get; }

    public IPAddress SegmentAddress { get; }

    public static string HostLinkFor(string segment) => StableName.For(HostPrefix, segment, 9);

    /// <summary>The uplinks on this host (the host ends, whose alias names their segment).</summary>
    public static async Task<IReadOnlyList<SegmentUplink>> ListAsync()
    {
        var output = await HostTool.RunAsync(["ip", "-j", "address", "show"]);
        var aliases = await AliasesAsync();
        using var links = JsonDocument.Parse(output);
        var uplinks = new List<SegmentUplink>();
        foreach (var link in links.RootElement.EnumerateArray())
        {
            var name = link.GetProperty("ifname").GetString() ?? string.Empty;
            if (!HostLinkName().IsMatch(name))
            {
                continue;
            }

            var address = link.GetProperty("addr_info").EnumerateArray()
                .Where(a => a.TryGetProperty("family", out var family) && family.GetString() == "inet")
                .Select(a => IPAddress.Parse(a.GetProperty("local").GetString()!))
                .FirstOrDefault();
            var segment = aliases.GetValueOrDefault(name) is { } alias && alias.StartsWith("segment=", StringComparison.Ordinal) ? alias["segment=".Length..] : string.Empty;
            uplinks.Add(new SegmentUplink(segment, name, address ?? IPAddress.Any, address is null ? IPAddress.Any : Offset(address, 1)));
        }

        return uplinks;
    }

    /// <summary>Makes the segment's uplink, or finds it made; the caller holds the segment's lock.</summary>
    internal static async Task<SegmentUplink> EnsureAsync(string segment, IPNetwork transferNetwork)
    {
        var hostLink = HostLinkFor(segment);
        if ((await ListAsync()).FirstOrDefault(u => u.HostLink == hostLink && !u.HostAddress.Equals(IPAddress.Any)) is { } existing
            && (await NamespaceLinks.NamesAsync(segment)).Contains(SegmentEnd))
        {
            return existing;
        }

        await RemoveAsync(segment);
        await Allocation.WaitAsync();
        try
        {
            var hostAddress = await FreeBlockAsync(transferNetwork);
            var segmentAddress = Offset(hostAddress, 1);
            try
            {
                await IpCommand.RunAsync("link", "add", hostLink, "type", "veth", "peer", "name", SegmentEnd, "netns", segment);
                await IpCommand.RunAsync("link", "set", hostLink, "alias", "segment=" + segment);
                await IpCommand.RunAsync("address", "add", $"{hostAddress}/30", "dev", hostLink);

                // Connections to 127.0.0.1 leave with that source until masqueraded, and their replies come back to
                // it: the kernel drops both as martians on any link without route_localnet. This link only.
                await File.WriteAllTextAsync($"/proc/sys/net/ipv4/conf/{hostLink}/route_localnet", "1");
                await IpCommand.RunAsync("link", "set", hostLink, "up");
                await IpCommand.RunAsync("-n", segment, "address", "add", $"{segmentAddress}/30", "dev", SegmentEnd);
                await IpCommand.RunAsync("-n", segment, "link", "set", SegmentEnd, "up");
                await IpCommand.RunAsync("-n", segment, "rule", "add", "priority", RulePriority.ToString(CultureInfo.InvariantCulture), "to", hostAddress.ToString(), "lookup", "main");
                await Nftables.ApplyAsync(segment, GuardRuleset);
                await SegmentForwarding.UpdateAsync(segment);
                return new SegmentUplink(segment, hostLink, hostAddress, segmentAddress);
            }
            catch
            {
                await RemoveAsync(segment);
                throw;
            }
        }
        finally
        {
            Allocation.Release();
        }
    }

    /// <summary>Removes the segment's uplink; gone already is fine. The caller holds the segment's lock.</summary>
    internal static async Task RemoveAsync(string segment)
    {
        await IpCommand.TryRunAsync("link", "delete", HostLinkFor(segment));
        if (!NamespaceLinks.Exists(segment))
        {
            return;
        }

        await IpCommand.TryRunAsync("-n", segment, "link", "delete", SegmentEnd);
        while ((await IpCommand.TryRunAsync("-n", segment, "rule", "delete", "priority", RulePriority.ToString(CultureInfo.InvariantCulture))).ExitCode == 0)
        {
        }

        await Nftables.DeleteTableAsync(segment, GuardTable);
        await SegmentForwarding.UpdateAsync(segment);
    }

    /// <summary>Removes an uplink whose segment has no port forward left (one that <see cref="ListAsync"/> found).</summary>
    public static async Task RemoveAsync(SegmentUplink uplink)
    {
        if (uplink.Segment.Length == 0)
        {
            await IpCommand.TryRunAsync("link", "delete", uplink.HostLink);
            return;
        }

        using (await SegmentForwarding.LockAsync(uplink.Segment))
        {
            await RemoveAsync(uplink.Segment);
        }
    }

    private static string GuardRuleset => $$"""
        table ip {{GuardTable}} {
            chain forward {
                type filter hook forward priority filter; policy accept;
                iifname "{{SegmentEnd}}" oifname != "{{TenantSegment.Bridge}}" drop
                iifname "{{SegmentEnd}}" ct state new ct status & dnat != dnat drop
                oifname "{{SegmentEnd}}" iifname != "{{TenantSegment.Bridge}}" drop
                oifname "{{SegmentEnd}}" ct state != { established, related } drop
            }
            chain input {
                type filter hook input priority filter; policy accept;
                iifname "{{SegmentEnd}}" ct state != { established, related } drop
            }
        }
        """;

    /// <summary>The host address (.1) of the first /30 of <paramref name="transferNetwork"/> that no uplink holds.</summary>
    private static async Task<IPAddress> FreeBlockAsync(IPNetwork transferNetwork)
    {
        var taken = (await ListAsync()).Select(u => u.HostAddress).ToHashSet();
        var blocks = 1L << (32 - transferNetwork.PrefixLength - 2);
        for (var block = 0L; block < blocks; block++)
        {
            var host = Offset(transferNetwork.BaseAddress, (block * 4) + 1);
            if (!taken.Contains(host))
            {
                return host;
            }
        }

        throw new InvalidOperationException($"The transfer network {transferNetwork} has no /30 left for another segment's uplink.");
    }

    private static async Task<Dictionary<string, string>> AliasesAsync()
    {
        using var links = JsonDocument.Parse(await HostTool.RunAsync(["ip", "-j", "link", "show"]));
        return links.RootElement.EnumerateArray()
            .Where(l => l.TryGetProperty("ifalias", out _))
            .ToDictionary(l => l.GetProperty("ifname").GetString() ?? string.Empty, l => l.GetProperty("ifalias").GetString() ?? string.Empty);
    }

    internal static void RequireTransferNetwork(IPNetwork transferNetwork)
    {
        if (transferNetwork.BaseAddress.AddressFamily != AddressFamily.InterNetwork || transferNetwork.PrefixLength > 30)
        {
            throw new ArgumentException("A transfer network is IPv4 with room for at least one /30.", nameof(transferNetwork));
        }
    }

    private static IPAddress Offset(IPAddress address, long offset)
    {
        var bytes = address.GetAddressBytes();
        var value = ((uint)bytes[0] << 24 | (uint)bytes[1] << 16 | (uint)bytes[2] << 8 | bytes[3]) + (uint)offset;
        return new IPAddress([(byte)(value >> 24), (byte)(value >> 16), (byte)(value >> 8), (byte)value]);
    }

    [GeneratedRegex("^plup[0-9a-f]{9}$")]
    private static partial Regex HostLinkName();
}
