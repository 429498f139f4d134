using System.Net;
using Platform.Contracts.Provisioning;

namespace Platform.HostAgent.Drivers;

/// <summary>
/// Host-local network attachments for machines that come without one, until the networking service hands
/// them out: each machine gets a /30 of <c>10.250.0.0/16</c> (its gateway, the host side, and its own
/// address), kept from its first launch until the agent tears it down so that it keeps its address across restarts
/// and recreates.
/// </summary>
public sealed class LocalAddresses
{
    private const int Slots = 16384;
    private static readonly uint Base = ToUInt(IPAddress.Parse("10.250.0.0"));
    private readonly string _directory;
    private readonly Lock _lock = new();

    public LocalAddresses(string statePath) => _directory = Directory.CreateDirectory(Path.Combine(statePath, "addresses")).FullName;

    public NetworkAttachment For(Guid machineId)
    {
        lock (_lock)
        {
            var file = Path.Combine(_directory, machineId.ToString());
            if (!File.Exists(file))
            {
                var taken = Directory.EnumerateFiles(_directory).Select(f => int.Parse(File.ReadAllText(f))).ToHashSet();
                var free = Enumerable.Range(0, Slots).FirstOrDefault(slot => !taken.Contains(slot), -1);
                if (free < 0)
                {
                    throw new LaunchFailedException($"this host has no local address left ({Slots} machines hold one)");
                }

                File.WriteAllText(file, free.ToString());
            }

            var network = Base + (uint)(int.Parse(File.ReadAllText(file)) * 4);
            return new NetworkAttachment(NamespaceOf(machineId), ToAddress(network + 2).ToString(), 30, ToAddress(network + 1).ToString(), NetworkAttachment.MacOf(machineId));
        }
    }

    public void Release(Guid machineId) => File.Delete(Path.Combine(_directory, machineId.ToString()));

    public static string NamespaceOf(Guid machineId) => NetworkAttachment.NamespaceOf(machineId);

    /// <summary>Locally administered, unicast, and the machine's own: the low five bytes of its id.</summary>

    private static uint ToUInt(IPAddress address)
    {
        var bytes = address.GetAddressBytes();
        return (uint)(bytes[0] << 24 | bytes[1] << 16 | bytes[2] << 8 | bytes[3]);
    }

    private static IPAddress ToAddress(uint value) => new([(byte)(value >> 24), (byte)(value >> 16), (byte)(value >> 8), (byte)value]);
}
