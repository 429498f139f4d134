using System.Collections.Immutable;
using System.Net;
using Platform.Contracts.Networking;

namespace Platform.Networking.Addressing;

/// <summary>
/// The leases in one tenant's subnet, folded from its stream <c>subnet-{tenantId}</c>, and the released
/// addresses still in quarantine. Every lease is appended with the stream's expected version: two
/// machines can never be given one address.
/// </summary>
public sealed record SubnetLeases(
    ImmutableDictionary<Guid, NetworkAllocated> Leases,
    ImmutableDictionary<uint, DateTimeOffset> Quarantined,
    ImmutableDictionary<Guid, NetworkReleased> Released)
{
    public static string StreamOf(Guid tenantId) => $"subnet-{tenantId}";

    public static SubnetLeases Empty { get; } =
        new(ImmutableDictionary<Guid, NetworkAllocated>.Empty, ImmutableDictionary<uint, DateTimeOffset>.Empty, ImmutableDictionary<Guid, NetworkReleased>.Empty);

    public static SubnetLeases Evolve(SubnetLeases? leases, object @event) => (leases ?? Empty).Apply(@event);

    public SubnetLeases Apply(object @event) => @event switch
    {
        NetworkAllocated allocated => this with
        {
            Leases = Leases.SetItem(allocated.MachineId, allocated),
            Quarantined = Quarantined.Remove(Number(allocated.Address)),
            Released = Released.Remove(allocated.MachineId),
        },
        NetworkReleased { Address: { } address } released => this with
        {
            Leases = Leases.Remove(released.MachineId),
            Quarantined = Quarantined.SetItem(Number(address), released.QuarantinedUntil),
            Released = Released.SetItem(released.MachineId, released),
        },
        NetworkReleased released => this with { Released = Released.SetItem(released.MachineId, released) },
        _ => this,
    };

    /// <summary>
    /// The lowest free address of <paramref name="subnet"/> for the machine: not the network address, the
    /// gateway (the first host address) or the broadcast address, not leased, not in quarantine. Null when
    /// there is none.
    /// </summary>
    public NetworkAllocated? Allocate(Guid machineId, Guid tenantId, Ipv4Block subnet, DateTimeOffset now)
    {
        var taken = Leases.Values.Select(l => Number(l.Address)).ToHashSet();
        for (var index = 2UL; index < subnet.Size - 1; index++)
        {
            var address = subnet.Network + (uint)index;
            if (!taken.Contains(address) && !(Quarantined.TryGetValue(address, out var until) && until > now))
            {
                return new NetworkAllocated(machineId, tenantId, subnet.ToString(), subnet.Address(index).ToString(), subnet.PrefixLength, subnet.Address(1).ToString(), now);
            }
        }

        return null;
    }

    private static uint Number(string address) => Ipv4Block.ToUInt(IPAddress.Parse(address));
}
