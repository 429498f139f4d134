using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Platform.Provisioning.Drivers.MicroVm;

/// <summary>Who a guest is on its network: its machine id, hostname, address and MAC, and its way out (the gateway).</summary>
public sealed partial record GuestIdentity(string MachineId, string Hostname, IPAddress Address, int PrefixLength, IPAddress Gateway, string Mac)
{
    public void Validate()
    {
        // It travels on the kernel command line and the serial console as key=value words.
        if (!MachineIdPattern().IsMatch(MachineId))
        {
            throw new ArgumentException("A machine id is 1 to 64 letters, digits, '-' or '_'.", nameof(MachineId));
        }

        if (!HostnamePattern().IsMatch(Hostname))
        {
            throw new ArgumentException("A hostname is one DNS label: 1 to 63 lowercase letters, digits or '-', not starting or ending with '-'.", nameof(Hostname));
        }

        if (Address.AddressFamily != AddressFamily.InterNetwork || Gateway.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new ArgumentException("A guest's address and gateway are IPv4 addresses.", nameof(Address));
        }

        if (PrefixLength is < 1 or > 30)
        {
            throw new ArgumentOutOfRangeException(nameof(PrefixLength), PrefixLength, "A guest's prefix is 1 to 30 bits.");
        }

        if (Address.Equals(Gateway))
        {
            throw new ArgumentException("A guest's address cannot be its gateway.", nameof(Address));
        }

        // Unicast (lowest bit of the first octet clear): a multicast MAC is refused by the guest's kernel.
        if (!MacPattern().IsMatch(Mac) || (Convert.ToByte(Mac[..2], 16) & 1) != 0)
        {
            throw new ArgumentException("A MAC is six lowercase hex pairs separated by ':', unicast (e.g. 52:54:00:12:34:56).", nameof(Mac));
        }
    }

    /// <summary>The words /init reads, on the kernel command line or one serial line.</summary>
    internal string ToKernelArguments() =>
        $"platform.id={MachineId} platform.hostname={Hostname} platform.ip={Address}/{PrefixLength} platform.gw={Gateway} platform.mac={Mac}";

    /// <summary>What the guest agent answers when the guest has taken this identity.</summary>
    internal string AgentGreeting => $"platform-guest id={MachineId} hostname={Hostname} ip={Address}";

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex MachineIdPattern();

    [GeneratedRegex("^(?!-)[a-z0-9-]{1,63}(?<!-)$")]
    private static partial Regex HostnamePattern();

    [GeneratedRegex("^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")]
    private static partial Regex MacPattern();
}
