namespace Platform.Contracts.Tenancy;

/// <summary>An amount of each resource a tenant's quota counts.</summary>
/// <remarks>
/// <paramref name="Snapshots"/> came later: a limit set before it (or a request that leaves it out) is 0, no snapshots.
/// </remarks>
public sealed record QuotaResources(int Machines, int Vcpus, int MemoryMiB, int DiskMiB, int Tunnels, int PortForwards, int Snapshots = 0)
{
    public static QuotaResources None { get; } = new(0, 0, 0, 0, 0, 0, 0);

    public QuotaResources Plus(QuotaResources other) =>
        new(Machines + other.Machines, Vcpus + other.Vcpus, MemoryMiB + other.MemoryMiB, DiskMiB + other.DiskMiB, Tunnels + other.Tunnels, PortForwards + other.PortForwards,
            Snapshots + other.Snapshots);

    /// <summary>Each resource by its name in the API (camelCase).</summary>
    public IEnumerable<(string Name, long Amount)> Named()
    {
        yield return ("machines", Machines);
        yield return ("vcpus", Vcpus);
        yield return ("memoryMiB", MemoryMiB);
        yield return ("diskMiB", DiskMiB);
        yield return ("tunnels", Tunnels);
        yield return ("portForwards", PortForwards);
        yield return ("snapshots", Snapshots);
    }
}

/// <summary>
/// Command: hold <paramref name="Requested"/> of the tenant's quota for one machine, or one snapshot (its id in
/// <paramref name="MachineId"/>: the holder's id). Idempotent by that id.
/// </summary>
public sealed record ReserveQuota(Guid MachineId, Guid TenantId, QuotaResources Requested);

/// <summary>Command: give back what the machine holds. Idempotent by machine id.</summary>
public sealed record ReleaseQuota(Guid MachineId, Guid TenantId);

public sealed record QuotaReserved(Guid MachineId, Guid TenantId, QuotaResources Reserved) : IIntegrationEvent;

/// <summary>The reservation would break <paramref name="Limit"/>: <paramref name="Used"/> + <paramref name="Requested"/> &gt; <paramref name="Max"/>. Nothing was held.</summary>
public sealed record QuotaRejected(Guid MachineId, Guid TenantId, string Limit, long Used, long Requested, long Max) : IIntegrationEvent;

public sealed record QuotaReleased(Guid MachineId, Guid TenantId, QuotaResources Released) : IIntegrationEvent;

/// <summary>
/// Request (answered with <see cref="QuotaChecked"/>): would <paramref name="Requested"/> fit in the tenant's quota now?
/// Holds nothing: it lets a creation be refused at once; the reservation that follows is what counts.
/// </summary>
public sealed record CheckQuota(Guid TenantId, QuotaResources Requested);

/// <summary>The answer to <see cref="CheckQuota"/>: it fits, or the first limit it would break and by how much.</summary>
public sealed record QuotaChecked(bool Fits, string? Limit, long Used, long Requested, long Max);

/// <summary>A platform-admin set the tenant's limits.</summary>
public sealed record QuotaLimitsSet(Guid TenantId, QuotaResources Limits, DateTimeOffset SetAt) : IIntegrationEvent;
