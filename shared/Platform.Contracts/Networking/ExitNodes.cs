namespace Platform.Contracts.Networking;

/// <summary>
/// A WireGuard exit node machines can send their traffic through: its <paramref name="Endpoint"/>
/// (<c>host:port</c>), <paramref name="PublicKey"/>, the <paramref name="AllowedIps"/> routed to it, and
/// where it is, which is the identity the outside world sees. <paramref name="TenantId"/> is null for a
/// platform-admin's node, which every tenant may use. The hints align a machine with its exit's place.
/// <paramref name="PeerCidr"/> is the range machines' tunnel addresses come from (the node routes it back to its peers);
/// null on nodes registered before it existed, which means the default range. <paramref name="ExitAddress"/> is the public
/// address the world sees the machines' traffic come from, when its operator says (see <see cref="ExitNodeExitAddressChanged"/>).
/// </summary>
public sealed record ExitNodeRegistered(
    Guid ExitNodeId,
    Guid? TenantId,
    string Name,
    string Endpoint,
    string PublicKey,
    IReadOnlyList<string> AllowedIps,
    string Region,
    string? Locale,
    string? Timezone,
    IReadOnlyList<string>? Dns,
    DateTimeOffset RegisteredAt,
    string? PeerCidr = null,
    string? ExitAddress = null) : IIntegrationEvent
{
    /// <summary>The range tunnel addresses come from when a node names none: the shared address space of RFC 6598.</summary>
    public const string DefaultPeerCidr = "100.64.0.0/16";

    public string PeerRange => PeerCidr ?? DefaultPeerCidr;
}

public sealed record ExitNodeRemoved(Guid ExitNodeId, Guid? TenantId, DateTimeOffset RemovedAt) : IIntegrationEvent;

/// <summary>
/// The public address the world sees traffic through the exit node come from is now <paramref name="Current"/> (it was
/// <paramref name="Previous"/>, null when unknown): a residential or mobile exit's address rotates. Machines whose identity
/// depends on it may be recreated by the healing watchdog (the tenant's policy says).
/// </summary>
public sealed record ExitNodeExitAddressChanged(Guid ExitNodeId, Guid? TenantId, string? Previous, string Current, DateTimeOffset ChangedAt) : IIntegrationEvent;
