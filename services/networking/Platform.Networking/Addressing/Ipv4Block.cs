using System.Net;
using System.Net.Sockets;

namespace Platform.Networking.Addressing;

/// <summary>
/// An IPv4 CIDR block as numbers, for carving and counting. Parsing is the platform's one refusal of a
/// malformed or unaligned CIDR (<c>10.0.0.1/24</c> is refused: it names a host, not a block). IPv6 pools
/// would get a block type of their own; the events carry CIDRs as text, which does not preclude them.
/// </summary>
public readonly record struct Ipv4Block(uint Network, int PrefixLength)
{
    public ulong Size => 1UL << (32 - PrefixLength);

    public uint Last => (uint)(Network + Size - 1);

    public static bool TryParse(string? text, out Ipv4Block block)
    {
        block = default;
        if (text is null || !text.Contains('/', StringComparison.Ordinal) || !IPNetwork.TryParse(text, out var network)
            || network.BaseAddress.AddressFamily != AddressFamily.InterNetwork)
        {
            return false;
        }

        // IPNetwork clears host bits quietly; a block written with them is a mistake to point out, not to guess at.
        if (!IPAddress.TryParse(text[..text.IndexOf('/', StringComparison.Ordinal)], out var written) || !written.Equals(network.BaseAddress))
        {
            return false;
        }

        block = new Ipv4Block(ToUInt(network.BaseAddress), network.PrefixLength);
        return true;
    }

    public static Ipv4Block Parse(string text) => TryParse(text, out var block) ? block : throw new FormatException($"'{text}' is not an IPv4 CIDR block.");

    public bool Overlaps(Ipv4Block other) => Network <= other.Last && other.Network <= Last;

    public bool Contains(Ipv4Block other) => Network <= other.Network && other.Last <= Last;

    /// <summary>The <paramref name="index"/>-th address of the block (0 is the network address).</summary>
    public IPAddress Address(ulong index) => ToAddress((uint)(Network + index));

    /// <summary>The <paramref name="index"/>-th aligned sub-block of <paramref name="prefixLength"/> bits.</summary>
    public Ipv4Block Subnet(int prefixLength, ulong index) => new((uint)(Network + index * (1UL << (32 - prefixLength))), prefixLength);

    public ulong SubnetCount(int prefixLength) => 1UL << (prefixLength - PrefixLength);

    public override string ToString() => $"{ToAddress(Network)}/{PrefixLength}";

    public static uint ToUInt(IPAddress address)
    {
        var bytes = address.GetAddressBytes();
        return (uint)(bytes[0] << 24 | bytes[1] << 16 | bytes[2] << 8 | bytes[3]);
    }

    private static IPAddress ToAddress(uint value) => new([(byte)(value >> 24), (byte)(value >> 16), (byte)(value >> 8), (byte)value]);
}
