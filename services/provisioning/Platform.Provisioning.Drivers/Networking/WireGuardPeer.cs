using System.Net;
using System.Text.RegularExpressions;

namespace Platform.Provisioning.Drivers.Networking;

/// <summary>
/// The other end of a WireGuard interface: its public key, where to reach it (none for a peer that roams, such as a
/// machine as the exit node sees it), which destinations go to it, and how often to keep a NAT mapping open.
/// </summary>
public sealed partial record WireGuardPeer(string PublicKey, string? Endpoint, IReadOnlyList<IPNetwork> AllowedIps, int PersistentKeepaliveSeconds = 0)
{
    /// <summary>Throws <see cref="ArgumentException"/> for anything wg would refuse or misread, so that it is refused before anything is made.</summary>
    public void Validate()
    {
        var bytes = new byte[33];
        if (PublicKey is not { Length: 44 } || !Convert.TryFromBase64String(PublicKey, bytes, out var written) || written != 32)
        {
            throw new ArgumentException("A WireGuard public key is 32 bytes in base64 (44 characters).", nameof(PublicKey));
        }

        if (Endpoint is not null && !IsEndpoint(Endpoint))
        {
            throw new ArgumentException("An endpoint is host:port, the host an IPv4 address, [IPv6] address or DNS name, the port 1 to 65535.", nameof(Endpoint));
        }

        if (AllowedIps is not { Count: > 0 and <= 32 })
        {
            throw new ArgumentException("A peer has 1 to 32 allowed-IP blocks.", nameof(AllowedIps));
        }

        if (PersistentKeepaliveSeconds is < 0 or > 65535)
        {
            throw new ArgumentException("A persistent keepalive is 0 (off) to 65535 seconds.", nameof(PersistentKeepaliveSeconds));
        }
    }

    /// <summary>The peer as <c>wg set</c> arguments.</summary>
    internal IEnumerable<string> SetArguments()
    {
        yield return "peer";
        yield return PublicKey;
        if (Endpoint is not null)
        {
            yield return "endpoint";
            yield return Endpoint;
        }

        yield return "allowed-ips";
        yield return string.Join(',', AllowedIps);
        yield return "persistent-keepalive";
        yield return PersistentKeepaliveSeconds == 0 ? "off" : PersistentKeepaliveSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    private static bool IsEndpoint(string endpoint)
    {
        var colon = endpoint.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(endpoint[(colon + 1)..], System.Globalization.NumberStyles.None, null, out var port) || port is < 1 or > 65535)
        {
            return false;
        }

        var host = endpoint[..colon];
        return host.StartsWith('[') && host.EndsWith(']')
            ? IPAddress.TryParse(host[1..^1], out var v6) && v6.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
            : (IPAddress.TryParse(host, out var v4) && v4.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && host.Count(c => c == '.') == 3) || DnsName().IsMatch(host);
    }

    [GeneratedRegex(@"^(?=.{1,253}$)(?!\d+(\.\d+)*$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")]
    private static partial Regex DnsName();
}
