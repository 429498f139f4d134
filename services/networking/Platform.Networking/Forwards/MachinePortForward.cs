using Platform.Contracts.Networking;

namespace Platform.Networking.Forwards;

public static class PortForwardStates
{
    public const string Opening = "opening";
    public const string Open = "open";
    public const string Closing = "closing";

    /// <summary>The host could not open it; it stays visible (with why) until it is deleted or its machine goes.</summary>
    public const string Failed = "failed";

    public const string Removed = "removed";
}

/// <summary>Networking's own event: the forward is being opened on the machine's host.</summary>
public sealed record PortForwardRequested(Guid ForwardId, Guid MachineId, Guid TenantId, Guid HostId, string MachineAddress, int Port, DateTimeOffset RequestedAt);

/// <summary>Networking's own event: the host could not open the forward; nothing of it is on the host.</summary>
public sealed record PortForwardAbandoned(Guid ForwardId, Guid MachineId, Guid TenantId, string Reason, DateTimeOffset AbandonedAt);

/// <summary>Networking's own event: the forward is being closed on its host.</summary>
public sealed record PortForwardRemoveRequested(Guid ForwardId, Guid TenantId, DateTimeOffset RequestedAt);

/// <summary>A host port forwarded to a machine's port, folded from its stream <c>port-forward-{forwardId}</c>.</summary>
public sealed record MachinePortForward(
    Guid ForwardId,
    Guid MachineId,
    Guid TenantId,
    Guid HostId,
    string MachineAddress,
    int Port,
    string State,
    int? HostPort,
    string? HostAddress,
    string? LastError,
    DateTimeOffset? RequestedAt = null,
    DateTimeOffset? OpenedAt = null)
{
    public static string StreamOf(Guid forwardId) => $"port-forward-{forwardId}";

    /// <summary>Whether the host may hold something of it: a close must reach the host.</summary>
    public bool MayBeOnHost => State is PortForwardStates.Opening or PortForwardStates.Open or PortForwardStates.Closing;

    /// <summary>Its end: removed, with why when it did not go on request (null).</summary>
    public PortForwardRemoved Removed(string? reason, DateTimeOffset now) => new(ForwardId, MachineId, TenantId, HostId, Port, HostPort, reason, now);

    /// <summary>The host opened it: open, if it was being opened. One removed or failed since is closed on the host again, and records nothing.</summary>
    public static IReadOnlyList<object> Decide(MachinePortForward? forward, PortForwardOpened report, DateTimeOffset now) => forward is { State: PortForwardStates.Opening }
        ? [new PortForwarded(forward.ForwardId, forward.MachineId, forward.TenantId, report.HostId, forward.Port, report.HostPort, report.HostAddress, now)]
        : [];

    /// <summary>The host could not open it (failed, with why), or it was being closed and nothing of it is on the host (removed).</summary>
    public static IReadOnlyList<object> Decide(MachinePortForward? forward, PortForwardFailed report, DateTimeOffset now) => forward switch
    {
        { State: PortForwardStates.Opening } => [new PortForwardAbandoned(forward.ForwardId, forward.MachineId, forward.TenantId, report.Reason, now)],
        { State: PortForwardStates.Closing } => [forward.Removed(null, now)],
        _ => [],
    };

    /// <summary>The host closed it: on request, or with its machine before anyone here asked.</summary>
    public static IReadOnlyList<object> Decide(MachinePortForward? forward, PortForwardClosed report, DateTimeOffset now) => forward is { MayBeOnHost: true }
        ? [forward.Removed(forward.State == PortForwardStates.Closing ? null : "closed on its host with its machine", now)]
        : [];

    /// <summary>
    /// A request to remove it: one the host may hold is closed there first; a failed one, which the host does not hold, is
    /// removed at once. Another tenant's forward (<paramref name="tenantId"/>) is none of this request's business.
    /// </summary>
    public static IReadOnlyList<object> DecideRemoval(MachinePortForward? forward, Guid tenantId, DateTimeOffset now) => forward switch
    {
        _ when forward?.TenantId != tenantId => [],
        { State: PortForwardStates.Opening or PortForwardStates.Open } => [new PortForwardRemoveRequested(forward.ForwardId, tenantId, now)],
        { State: PortForwardStates.Failed } => [forward.Removed(null, now)],
        _ => [],
    };

    public static MachinePortForward Evolve(MachinePortForward? forward, object @event) => @event switch
    {
        PortForwardRequested e => new MachinePortForward(e.ForwardId, e.MachineId, e.TenantId, e.HostId, e.MachineAddress, e.Port, PortForwardStates.Opening, null, null, null,
            e.RequestedAt),
        PortForwarded e when forward is not null => forward with { State = PortForwardStates.Open, HostPort = e.HostPort, HostAddress = e.HostAddress, OpenedAt = e.ForwardedAt },
        PortForwardAbandoned e when forward is not null => forward with { State = PortForwardStates.Failed, LastError = e.Reason },
        PortForwardRemoveRequested when forward is not null => forward with { State = PortForwardStates.Closing },
        PortForwardRemoved when forward is not null => forward with { State = PortForwardStates.Removed },
        // Removed before anything was requested: recorded, so that a late request makes nothing.
        PortForwardRemoved e => new MachinePortForward(e.ForwardId, e.MachineId, e.TenantId, e.HostId, "", e.Port, PortForwardStates.Removed, null, null, e.Reason),
        _ => forward ?? throw new InvalidOperationException($"A port forward stream cannot start with {@event.GetType().Name}."),
    };
}
