namespace Platform.Contracts.Tenancy;

/// <summary>Command, the creation saga's last step: enter the machine in its tenant's inventory. Idempotent by machine id.</summary>
public sealed record RegisterMachine(Guid MachineId, Guid TenantId, string Name, string Kind, string Owner);

/// <summary>Command, the destroy flow's last step. Idempotent by machine id.</summary>
public sealed record UnregisterMachine(Guid MachineId, Guid TenantId);

public sealed record MachineRegistered(Guid MachineId, Guid TenantId, string Name, string Kind, string Owner, DateTimeOffset RegisteredAt) : IIntegrationEvent;

public sealed record MachineUnregistered(Guid MachineId, Guid TenantId, DateTimeOffset UnregisteredAt) : IIntegrationEvent;
