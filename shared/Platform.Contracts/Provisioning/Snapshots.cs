namespace Platform.Contracts.Provisioning;

/// <summary>
/// A user asked for a snapshot of a machine, or a fork of it (<paramref name="Fork"/>: the machines to make from the
/// snapshot once it is saved). What the machine was made as (its kind, driver, template, shape, command) is kept with it:
/// a machine made from the snapshot is made as that, on its host.
/// </summary>
public sealed record SnapshotRequested(
    Guid SnapshotId,
    Guid TenantId,
    string Name,
    Guid MachineId,
    string MachineName,
    Guid HostId,
    string Kind,
    string Driver,
    TemplateRef Template,
    MachineShape Shape,
    IReadOnlyList<string>? Command,
    IReadOnlyDictionary<string, string> Labels,
    SnapshotFork? Fork,
    DateTimeOffset RequestedAt) : IIntegrationEvent;

/// <summary>A fork: operation <paramref name="OperationId"/> makes the machines <paramref name="MachineIds"/> from the snapshot, in that order.</summary>
public sealed record SnapshotFork(Guid OperationId, IReadOnlyList<Guid> MachineIds);

/// <summary>The snapshot is saved on its host, <paramref name="SizeBytes"/> on disk; <paramref name="Contents"/> as <see cref="SnapshotSaved"/> says.</summary>
public sealed record SnapshotReady(Guid SnapshotId, Guid TenantId, string Contents, long SizeBytes, double SaveMilliseconds, DateTimeOffset ReadyAt) : IIntegrationEvent;

/// <summary>The snapshot could not be made (over quota, or its host could not save the machine); it holds nothing.</summary>
public sealed record SnapshotFailed(Guid SnapshotId, Guid TenantId, string Reason, DateTimeOffset FailedAt) : IIntegrationEvent;

/// <summary>One machine of a fork could not be made from the snapshot (no room on its host, a name taken): it was never created.</summary>
public sealed record ForkMachineRefused(Guid SnapshotId, Guid TenantId, Guid MachineId, string Reason, DateTimeOffset RefusedAt) : IIntegrationEvent;

public sealed record SnapshotDeleteRequested(Guid SnapshotId, Guid TenantId, DateTimeOffset RequestedAt) : IIntegrationEvent;

/// <summary>The snapshot is gone from its host and gave its quota back.</summary>
public sealed record SnapshotDeleted(Guid SnapshotId, Guid TenantId, DateTimeOffset DeletedAt) : IIntegrationEvent;
