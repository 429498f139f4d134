using System.Collections.Immutable;
using Platform.Contracts.Networking;
using Platform.Networking.Addressing;

namespace Platform.Networking.Tunnels;

public static class TunnelStates
{
    public const string Attaching = "attaching";
    public const string Attached = "attached";
    public const string Detaching = "detaching";
    public const string Detached = "detached";
}

/// <summary>
/// Networking's own event: the machine's tunnel is being set up on its host, as <paramref name="TunnelAddress"/> of the exit node,
/// for the machine at <paramref name="MachineAddress"/> in its segment (<paramref name="Gateway"/>/<paramref name="PrefixLength"/>;
/// null in tunnels requested before they were recorded, which cannot be re-attached).
/// </summary>
public sealed record TunnelRequested(
    Guid MachineId, Guid TenantId, Guid ExitNodeId, Guid HostId, string MachineAddress, string TunnelAddress, DateTimeOffset RequestedAt,
    string? Gateway = null, int? PrefixLength = null);

/// <summary>Networking's own event: the attached tunnel is being made again on its host with a fresh key (re-attach <paramref name="RequestId"/>).</summary>
public sealed record TunnelReattachRequested(Guid MachineId, Guid TenantId, Guid RequestId, string RequestedBy, DateTimeOffset RequestedAt);

/// <summary>Networking's own event: the host could not set the tunnel up; its address is free again.</summary>
public sealed record TunnelAbandoned(Guid MachineId, Guid TenantId, Guid ExitNodeId, string Reason, DateTimeOffset AbandonedAt);

/// <summary>Networking's own event: the tunnel is being removed from its host.</summary>
public sealed record TunnelDetachRequested(Guid MachineId, Guid TenantId, DateTimeOffset RequestedAt);

/// <summary>
/// A machine's tunnel, folded from its stream <c>tunnel-{machineId}</c>. <see cref="Health"/> (a <see cref="TunnelHealth"/>
/// value) is what its handshakes came to; <see cref="LastReattach"/> is the latest re-attach asked for (a repeat of it
/// changes nothing), <see cref="Reattach"/> the one in flight.
/// </summary>
public sealed record MachineTunnel(
    Guid MachineId,
    Guid TenantId,
    Guid ExitNodeId,
    Guid HostId,
    string TunnelAddress,
    string State,
    string? PublicKey,
    DateTimeOffset? AttachedAt,
    string MachineAddress = "",
    string? Gateway = null,
    int? PrefixLength = null,
    string Health = TunnelHealth.Pending,
    Guid? LastReattach = null,
    DateTimeOffset? RequestedAt = null,
    DateTimeOffset? LatestHandshakeAt = null,
    DateTimeOffset? HealthSince = null)
{
    /// <summary>The re-attach being made on the host: a tunnel attaching again after it was attached is one.</summary>
    public Guid? Reattach => State == TunnelStates.Attaching ? LastReattach : null;

    public static string StreamOf(Guid machineId) => $"tunnel-{machineId}";

    public static MachineTunnel Evolve(MachineTunnel? tunnel, object @event) => @event switch
    {
        TunnelRequested e => new MachineTunnel(e.MachineId, e.TenantId, e.ExitNodeId, e.HostId, e.TunnelAddress, TunnelStates.Attaching, null, null,
            e.MachineAddress, e.Gateway, e.PrefixLength, RequestedAt: e.RequestedAt),
        // A new key (a first attach or a re-attach): earlier handshakes were another key's.
        TunnelAttached e when tunnel is not null => tunnel with
        {
            State = TunnelStates.Attached, PublicKey = e.PublicKey, AttachedAt = e.AttachedAt, Health = TunnelHealth.Pending, HealthSince = e.AttachedAt, LatestHandshakeAt = null,
        },
        TunnelReattachRequested e when tunnel is not null => tunnel with { State = TunnelStates.Attaching, LastReattach = e.RequestId },
        TunnelReattachFailed e when tunnel is not null => tunnel with { State = TunnelStates.Attached, Health = TunnelHealth.Down, HealthSince = e.FailedAt },
        TunnelDown e when tunnel is not null => tunnel with { Health = TunnelHealth.Down, HealthSince = e.At, LatestHandshakeAt = e.LatestHandshakeAt ?? tunnel.LatestHandshakeAt },
        TunnelUp e when tunnel is not null => tunnel with { Health = TunnelHealth.Up, HealthSince = e.At, LatestHandshakeAt = e.LatestHandshakeAt },
        TunnelDetachRequested when tunnel is not null => tunnel with { State = TunnelStates.Detaching },
        TunnelAbandoned or TunnelDetached when tunnel is not null => tunnel with { State = TunnelStates.Detached },
        // Detached before anything was requested: recorded, so that a late attach makes nothing.
        TunnelDetached e => new MachineTunnel(e.MachineId, e.TenantId, e.ExitNodeId ?? Guid.Empty, Guid.Empty, "", TunnelStates.Detached, null, null),
        _ => tunnel ?? throw new InvalidOperationException($"A tunnel stream cannot start with {@event.GetType().Name}."),
    };

    /// <summary>The host set the tunnel up: attached if it was being attached; a tunnel detached since records nothing (its host is told to remove it).</summary>
    public static IReadOnlyList<object> Decide(MachineTunnel? tunnel, TunnelSetUp report, DateTimeOffset now) => tunnel is { State: TunnelStates.Attaching }
        ? [new TunnelAttached(tunnel.MachineId, tunnel.TenantId, tunnel.ExitNodeId, report.HostId, tunnel.TunnelAddress, report.PublicKey, now)]
        : [];

    /// <summary>
    /// The host could not set the tunnel up. A re-attach that failed leaves the tunnel as it was (attached, its address kept,
    /// down); a first attach is abandoned and its address released.
    /// </summary>
    public static IReadOnlyList<object> Decide(MachineTunnel? tunnel, TunnelSetUpFailed report, DateTimeOffset now) => tunnel switch
    {
        { State: TunnelStates.Attaching, Reattach: { } reattach } =>
            [new TunnelReattachFailed(tunnel.MachineId, tunnel.TenantId, tunnel.ExitNodeId, reattach, $"the host could not set the tunnel up: {report.Reason}", now)],
        { State: TunnelStates.Attaching } => [new TunnelAbandoned(tunnel.MachineId, tunnel.TenantId, tunnel.ExitNodeId, report.Reason, now)],
        _ => [],
    };

    /// <summary>
    /// Re-attach <paramref name="command"/>: an attached tunnel is made again with a fresh key, once per request. One attached
    /// before its segment was recorded cannot be (it is refused with why); any other state changes nothing.
    /// </summary>
    public static IReadOnlyList<object> Decide(MachineTunnel? tunnel, ReattachTunnel command, DateTimeOffset now) => tunnel switch
    {
        { State: TunnelStates.Attached, Gateway: null } => [new TunnelReattachFailed(tunnel.MachineId, tunnel.TenantId, tunnel.ExitNodeId, command.RequestId,
            "the tunnel was attached before its segment was recorded; destroy and create the machine to renew it", now)],
        { State: TunnelStates.Attached } when tunnel.LastReattach != command.RequestId =>
            [new TunnelReattachRequested(tunnel.MachineId, tunnel.TenantId, command.RequestId, command.RequestedBy, now)],
        _ => [],
    };

    /// <summary>
    /// Detach: a tunnel on its host is being removed from it; one never requested is recorded detached, so that a late attach
    /// makes nothing. Detaching or detached already: nothing more to record.
    /// </summary>
    public static IReadOnlyList<object> Decide(MachineTunnel? tunnel, DetachTunnel command, DateTimeOffset now) => tunnel switch
    {
        null => [new TunnelDetached(command.MachineId, command.TenantId, null, now)],
        { State: TunnelStates.Attaching or TunnelStates.Attached } => [new TunnelDetachRequested(command.MachineId, command.TenantId, now)],
        _ => [],
    };

    /// <summary>The host removed the tunnel: detached, if it was being detached.</summary>
    public static IReadOnlyList<object> Decide(MachineTunnel? tunnel, TunnelRemoved report, DateTimeOffset now) => tunnel is { State: TunnelStates.Detaching }
        ? [new TunnelDetached(tunnel.MachineId, tunnel.TenantId, tunnel.ExitNodeId, now)]
        : [];

    /// <summary>The exit node whose address for this tunnel the decided <paramref name="events"/> give back (abandoned or detached), or null.</summary>
    public static Guid? ReleasesAddressOf(MachineTunnel? tunnel, IReadOnlyList<object> events) =>
        tunnel is { ExitNodeId: var node } && node != Guid.Empty && events.Any(e => e is TunnelAbandoned or TunnelDetached) ? node : null;

    /// <summary>What the host agent takes to set this tunnel up through <paramref name="node"/> (again, with <paramref name="rekey"/>).</summary>
    public SetUpTunnel SetUp(ExitNodeRegistered node, Guid? rekey = null) =>
        new(MachineId, TenantId, MachineAddress, Gateway!, PrefixLength!.Value, TunnelAddress, node.Endpoint, node.PublicKey, node.AllowedIps, rekey);
}

/// <summary>Networking's own event: an exit node's tunnel address went to a machine.</summary>
public sealed record TunnelAddressLeased(Guid ExitNodeId, Guid MachineId, string Address);

/// <summary>Networking's own event: the machine's tunnel address of the exit node is free again.</summary>
public sealed record TunnelAddressReleased(Guid ExitNodeId, Guid MachineId);

/// <summary>
/// The tunnel addresses of one exit node, folded from <c>exit-node-peers-{exitNodeId}</c>: every machine that goes
/// out through the node has its own. Appended with the expected version, so two tunnels never share one.
/// </summary>
public sealed record ExitNodePeers(ImmutableDictionary<Guid, string> Leases)
{
    public static ExitNodePeers Empty { get; } = new(ImmutableDictionary<Guid, string>.Empty);

    public static string StreamOf(Guid exitNodeId) => $"exit-node-peers-{exitNodeId}";

    public static ExitNodePeers Evolve(ExitNodePeers? peers, object @event) => (peers ?? Empty, @event) switch
    {
        (var p, TunnelAddressLeased e) => p with { Leases = p.Leases.SetItem(e.MachineId, e.Address) },
        (var p, TunnelAddressReleased e) => p with { Leases = p.Leases.Remove(e.MachineId) },
        (var p, _) => p,
    };

    /// <summary>The lowest free host address of <paramref name="range"/> after its first (the exit node's own); null when none is left.</summary>
    public string? Free(Ipv4Block range)
    {
        var taken = Leases.Values.ToHashSet();
        for (var index = 2UL; index < range.Size - 1; index++)
        {
            var address = range.Address(index).ToString();
            if (!taken.Contains(address))
            {
                return address;
            }
        }

        return null;
    }
}
