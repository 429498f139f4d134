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

/// <summary>Command to a host agent (its own queue): set up the machine's tunnel in its tenant's segment. Idempotent by machine id.</summary>
public sealed record SetUpTunnel(
    Guid MachineId,
    Guid TenantId,
    string MachineAddress,
    string Gateway,
    int PrefixLength,
    string TunnelAddress,
    string ExitEndpoint,
    string ExitPublicKey,
    IReadOnlyList<string> AllowedIps);

/// <summary>Command to a host agent: remove the machine's tunnel. Idempotent.</summary>
public sealed record RemoveTunnel(Guid MachineId, Guid TenantId);

/// <summary>An agent's report: the tunnel is up on <paramref name="HostId"/>; <paramref name="PublicKey"/> is its end's key.</summary>
public sealed record TunnelSetUp(Guid MachineId, Guid TenantId, Guid HostId, string PublicKey, string Implementation);

public sealed record TunnelSetUpFailed(Guid MachineId, Guid TenantId, Guid HostId, string Reason);

public sealed record TunnelRemoved(Guid MachineId, Guid TenantId, Guid HostId);

/// <summary>An agent's periodic report: each tunnel on the host and its latest handshake (null before the first).</summary>
public sealed record TunnelHandshakesReported(Guid HostId, IReadOnlyList<TunnelHandshake> Tunnels, DateTimeOffset ReportedAt);

public sealed record TunnelHandshake(Guid MachineId, DateTimeOffset? LatestHandshakeAt);
