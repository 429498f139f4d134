namespace Platform.Contracts.Networking;

/// <summary>
/// Command, from the creation saga: send the machine's egress through <paramref name="ExitNodeId"/>. Networking
/// gives the machine a tunnel address of that exit node and has the machine's host agent set the tunnel up.
/// Idempotent by machine id. Answered by <see cref="TunnelAttached"/> or <see cref="TunnelAttachFailed"/>.
/// </summary>
public sealed record AttachTunnel(Guid MachineId, Guid TenantId, Guid HostId, Guid ExitNodeId, string MachineAddress, string Gateway, int PrefixLength);

/// <summary>Command: remove the machine's tunnel, on its host and in the records. Idempotent; answered by <see cref="TunnelDetached"/>.</summary>
public sealed record DetachTunnel(Guid MachineId, Guid TenantId);

/// <summary>
/// The machine's egress leaves through the exit node: its tunnel interface has <paramref name="TunnelAddress"/>, and
/// <paramref name="PublicKey"/> is the peer the exit node admits for it. The private key never left the host.
/// </summary>
public sealed record TunnelAttached(
    Guid MachineId,
    Guid TenantId,
    Guid ExitNodeId,
    Guid HostId,
    string TunnelAddress,
    string PublicKey,
    DateTimeOffset AttachedAt) : IIntegrationEvent;

/// <summary>No tunnel was made: <paramref name="Reason"/> says why in words a user can act on. Nothing is held.</summary>
public sealed record TunnelAttachFailed(Guid MachineId, Guid TenantId, Guid ExitNodeId, string Reason);

public sealed record TunnelDetached(Guid MachineId, Guid TenantId, Guid? ExitNodeId, DateTimeOffset DetachedAt) : IIntegrationEvent;

/// <summary>
/// Command to a host agent (its own queue): set up the machine's tunnel in its tenant's segment. Idempotent by machine id;
/// with <paramref name="Rekey"/> (a re-attach's id) a tunnel that is up is made again with a fresh key pair, once per id.
/// </summary>
public sealed record SetUpTunnel(
    Guid MachineId,
    Guid TenantId,
    string MachineAddress,
    string Gateway,
    int PrefixLength,
    string TunnelAddress,
    string ExitEndpoint,
    string ExitPublicKey,
    IReadOnlyList<string> AllowedIps,
    Guid? Rekey = null);

/// <summary>Command to a host agent: remove the machine's tunnel. Idempotent.</summary>
public sealed record RemoveTunnel(Guid MachineId, Guid TenantId);

/// <summary>An agent's report: the tunnel is up on <paramref name="HostId"/>; <paramref name="PublicKey"/> is its end's key.</summary>
public sealed record TunnelSetUp(Guid MachineId, Guid TenantId, Guid HostId, string PublicKey, string Implementation);

public sealed record TunnelSetUpFailed(Guid MachineId, Guid TenantId, Guid HostId, string Reason);

public sealed record TunnelRemoved(Guid MachineId, Guid TenantId, Guid HostId);

/// <summary>An agent's periodic report: each tunnel on the host and its latest handshake (null before the first).</summary>
public sealed record TunnelHandshakesReported(Guid HostId, IReadOnlyList<TunnelHandshake> Tunnels, DateTimeOffset ReportedAt);

/// <summary>One tunnel's latest handshake, by the key its interface has now (so a reading of a key replaced since counts for nothing).</summary>
public sealed record TunnelHandshake(Guid MachineId, DateTimeOffset? LatestHandshakeAt, string? PublicKey = null);

/// <summary>
/// Command (the healing watchdog's, or an operator's): make the machine's attached tunnel again on its host with a fresh key
/// pair, keeping its tunnel address. Answered by <see cref="TunnelAttached"/> with the new public key (which the exit node
/// must admit), or <see cref="TunnelReattachFailed"/>. Idempotent by <paramref name="RequestId"/>.
/// </summary>
public sealed record ReattachTunnel(Guid MachineId, Guid TenantId, Guid RequestId, string RequestedBy);

/// <summary>The tunnel could not be made again; it stays attached as it was (and down).</summary>
public sealed record TunnelReattachFailed(Guid MachineId, Guid TenantId, Guid ExitNodeId, Guid RequestId, string Reason, DateTimeOffset FailedAt) : IIntegrationEvent;

/// <summary>The states networking folds an attached tunnel's handshakes into.</summary>
public static class TunnelHealth
{
    /// <summary>Attached (or re-attached) and waiting for its first handshake, within the allowed time.</summary>
    public const string Pending = "pending";

    /// <summary>Its latest handshake is recent: traffic can flow through the exit node.</summary>
    public const string Up = "up";

    /// <summary>No handshake in time, a stale one, or its host stopped reporting: the machine's egress does not get through.</summary>
    public const string Down = "down";
}

/// <summary>
/// The machine's tunnel stopped working: <paramref name="Reason"/> says how (no first handshake within the allowed time,
/// latest handshake too old, or its host stopped reporting). <paramref name="LatestHandshakeAt"/> is the last seen, if any.
/// </summary>
public sealed record TunnelDown(
    Guid MachineId, Guid TenantId, Guid ExitNodeId, Guid HostId, string Reason, DateTimeOffset? LatestHandshakeAt, DateTimeOffset At) : IIntegrationEvent;

/// <summary>The machine's tunnel completed a handshake with its exit node (its first, or again after it was down).</summary>
public sealed record TunnelUp(Guid MachineId, Guid TenantId, Guid ExitNodeId, Guid HostId, DateTimeOffset LatestHandshakeAt, DateTimeOffset At) : IIntegrationEvent;
