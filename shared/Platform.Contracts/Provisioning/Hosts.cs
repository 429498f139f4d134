namespace Platform.Contracts.Provisioning;

/// <summary>
/// What one driver on a host accepts; placement and validation check requests against it. A cloud driver also
/// names the <paramref name="Regions"/> (regions, zones or locations) and <paramref name="InstanceTypes"/> it offers,
/// the first region being its default; <paramref name="Unavailable"/> says why it can take no machine now (no
/// credentials), in words an operator can act on.
/// </summary>
public sealed record DriverCapacity(
    string Name,
    string Kind,
    int MaxVcpus,
    int MinMemoryMiB,
    int MaxMemoryMiB,
    int MaxDiskMiB,
    IReadOnlyList<string>? Regions = null,
    IReadOnlyList<InstanceType>? InstanceTypes = null,
    string? Unavailable = null);

/// <summary>A cloud's instance type (machine type, VM size) as a driver offers it.</summary>
public sealed record InstanceType(string Name, int Vcpus, int MemoryMiB);

/// <summary>
/// A template a host can run machines from; <paramref name="Sha256"/> is the hash its version abbreviates.
/// <paramref name="RootDiskMiB"/>: the smallest disk a micro-VM of it can have (a template built from an image runs on a
/// copy of the image's root); 0 when it needs none.
/// </summary>
public sealed record TemplateOnHost(string Name, string Version, string Kind, string Sha256, IReadOnlyList<MachineShape> Snapshots, int RootDiskMiB = 0);

/// <summary>
/// A host agent started (or restarted) and offers this capacity, these drivers and these templates.
/// <paramref name="DataPlaneUrl"/> is where provisioning reaches the agent for exec, files and logs (none: it offers no way in).
/// </summary>
public sealed record HostRegistered(
    Guid HostId,
    string Name,
    int Vcpus,
    int MemoryMiB,
    int DiskMiB,
    string Accelerator,
    IReadOnlyList<DriverCapacity> Drivers,
    IReadOnlyList<TemplateOnHost> Templates,
    DateTimeOffset RegisteredAt,
    string? DataPlaneUrl = null) : IIntegrationEvent;

/// <summary>A host's placement ledger took the machine: its shape now counts against the host.</summary>
public sealed record MachinePlaced(Guid HostId, Guid MachineId, Guid TenantId, MachineShape Shape, DateTimeOffset PlacedAt) : IIntegrationEvent;

/// <summary>The machine is gone from the host; its shape no longer counts.</summary>
public sealed record MachineUnplaced(Guid HostId, Guid MachineId, Guid TenantId, MachineShape Shape, DateTimeOffset UnplacedAt) : IIntegrationEvent;

/// <summary>A template version became available for machines (first seen on some host).</summary>
public sealed record TemplateRegistered(string Name, string Version, string Kind, string Sha256, DateTimeOffset RegisteredAt) : IIntegrationEvent;

/// <summary>A host agent's report, at start and then periodically: what its host offers. Provisioning records a change as <see cref="HostRegistered"/>.</summary>
public sealed record HostCapacityReported(
    Guid HostId,
    string Name,
    int Vcpus,
    int MemoryMiB,
    int DiskMiB,
    string Accelerator,
    IReadOnlyList<DriverCapacity> Drivers,
    IReadOnlyList<TemplateOnHost> Templates,
    DateTimeOffset ReportedAt,
    string? DataPlaneUrl = null);
