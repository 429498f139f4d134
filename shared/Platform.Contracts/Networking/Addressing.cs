namespace Platform.Contracts.Networking;

/// <summary>Command: give the machine an address in its tenant's network (carving the tenant's subnet on first use). Idempotent by machine id.</summary>
public sealed record AllocateNetwork(Guid MachineId, Guid TenantId);

/// <summary>Command: give the machine's address back; it is quarantined before anyone gets it again. Idempotent by machine id.</summary>
public sealed record ReleaseNetwork(Guid MachineId, Guid TenantId);

/// <summary>A platform-admin added addresses: <paramref name="Cidr"/>, carved into tenant subnets of <paramref name="SubnetPrefixLength"/> bits.</summary>
public sealed record AddressPoolCreated(Guid PoolId, string Name, string Cidr, int SubnetPrefixLength, DateTimeOffset CreatedAt) : IIntegrationEvent;

/// <summary>The tenant's subnet, carved from a pool the first time one of its machines needed an address; its first address is the gateway.</summary>
public sealed record TenantSubnetAssigned(Guid TenantId, Guid PoolId, string Cidr, string Gateway, DateTimeOffset AssignedAt) : IIntegrationEvent;

/// <summary>The machine's lease: <paramref name="Address"/>/<paramref name="PrefixLength"/> in its tenant's subnet, via <paramref name="Gateway"/>.</summary>
public sealed record NetworkAllocated(Guid MachineId, Guid TenantId, string Subnet, string Address, int PrefixLength, string Gateway, DateTimeOffset AllocatedAt) : IIntegrationEvent;

/// <summary>
/// The machine's lease ended; its address is quarantined until <paramref name="QuarantinedUntil"/>.
/// <paramref name="Address"/> is null when the machine held no address (a release that came before any allocation).
/// </summary>
public sealed record NetworkReleased(Guid MachineId, Guid TenantId, string? Address, DateTimeOffset ReleasedAt, DateTimeOffset QuarantinedUntil) : IIntegrationEvent;

/// <summary>No address could be given: <paramref name="ProblemType"/> is <c>pool-exhausted</c> or <c>subnet-exhausted</c>'s problem type. Nothing changed.</summary>
public sealed record NetworkAllocationRefused(Guid MachineId, Guid TenantId, string ProblemType, string Reason);
