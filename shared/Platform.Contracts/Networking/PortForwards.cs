namespace Platform.Contracts.Networking;

/// <summary>
/// Command: expose TCP <paramref name="Port"/> of the machine at <paramref name="MachineAddress"/> on a free port of
/// its host <paramref name="HostId"/>. Networking checks its copy of the machine (this tenant's, running on that host
/// at that address) and has the host agent open the forward. Idempotent by forward id. Answered by
/// <see cref="PortForwarded"/> or <see cref="PortForwardRefused"/>.
/// </summary>
public sealed record ForwardPort(Guid ForwardId, Guid MachineId, Guid TenantId, Guid HostId, string MachineAddress, string Gateway, int PrefixLength, int Port);

/// <summary>Command: close the forward on its host and forget it. Idempotent; answered by <see cref="PortForwardRemoved"/>.</summary>
public sealed record RemovePortForward(Guid ForwardId, Guid TenantId);

/// <summary>Command: close every forward of the machine. Idempotent; each forward answers with <see cref="PortForwardRemoved"/>.</summary>
public sealed record RemovePortForwardsOf(Guid MachineId, Guid TenantId);

/// <summary>
/// The machine's <paramref name="Port"/> is reachable at <paramref name="HostPort"/> of every address of its host;
/// <paramref name="HostAddress"/> is the one the host agent advertises.
/// </summary>
public sealed record PortForwarded(
    Guid ForwardId,
    Guid MachineId,
    Guid TenantId,
    Guid HostId,
    int Port,
    int HostPort,
    string HostAddress,
    DateTimeOffset ForwardedAt) : IIntegrationEvent;

/// <summary>
/// The forward is gone: closed on its host (or never opened there). <paramref name="Reason"/> says why when nobody
/// asked for it (its machine was destroyed, the host could not open it).
/// </summary>
public sealed record PortForwardRemoved(Guid ForwardId, Guid MachineId, Guid TenantId, Guid HostId, int Port, int? HostPort, string? Reason, DateTimeOffset RemovedAt) : IIntegrationEvent;

/// <summary>
/// No forward was opened: <paramref name="ProblemType"/> is a problem type (<c>not-found</c>, <c>conflict</c>) and
/// <paramref name="Reason"/> says why in words a user can act on. Nothing is held.
/// </summary>
public sealed record PortForwardRefused(Guid ForwardId, Guid MachineId, Guid TenantId, string ProblemType, string Reason);

/// <summary>
/// Command to a host agent (its own queue): forward a free host port of its configured range to the machine's
/// <paramref name="Port"/> in its tenant's segment. Idempotent by forward id.
/// </summary>
public sealed record OpenPortForward(Guid ForwardId, Guid MachineId, Guid TenantId, string MachineAddress, string Gateway, int PrefixLength, int Port);

/// <summary>Command to a host agent: close the forward. Idempotent (closed already is fine).</summary>
public sealed record ClosePortForward(Guid ForwardId, Guid MachineId, Guid TenantId);

/// <summary>An agent's report: the forward is open at <paramref name="HostPort"/>; <paramref name="HostAddress"/> is the host's advertised address.</summary>
public sealed record PortForwardOpened(Guid ForwardId, Guid MachineId, Guid TenantId, Guid HostId, int HostPort, string HostAddress);

/// <summary>An agent's report: the forward could not be opened (no free port, machine not on this host); nothing of it is left.</summary>
public sealed record PortForwardFailed(Guid ForwardId, Guid MachineId, Guid TenantId, Guid HostId, string Reason);

/// <summary>An agent's report: nothing of the forward is left on the host (closed on request, or with its machine).</summary>
public sealed record PortForwardClosed(Guid ForwardId, Guid MachineId, Guid TenantId, Guid HostId);
