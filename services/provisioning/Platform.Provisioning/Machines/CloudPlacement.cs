using Platform.Contracts.Provisioning;

namespace Platform.Provisioning.Machines;

/// <summary>
/// Where in its cloud a cloud machine goes, within what the host's driver offers: the region asked for or the
/// driver's default (its first), the instance type asked for or the smallest that holds the machine's shape.
/// Drivers that run machines on their host offer neither, and take neither.
/// </summary>
public static class CloudPlacement
{
    /// <summary>Why <paramref name="driver"/> cannot take a machine in that region, of that type and shape; null when it can.</summary>
    public static (string Field, string Message)? Refusal(DriverCapacity driver, string? region, string? instanceType, MachineShape shape)
    {
        if (driver.Regions is not { } regions)
        {
            return region is not null ? ("region", $"the {driver.Name} driver runs machines on its host and has no regions")
                : instanceType is not null ? ("instanceType", $"the {driver.Name} driver runs machines on its host and has no instance types")
                : null;
        }

        if (region is not null && !regions.Contains(region))
        {
            return ("region", $"the {driver.Name} driver offers {string.Join(", ", regions)}; not {region}");
        }

        var types = driver.InstanceTypes ?? [];
        if (instanceType is not null)
        {
            var type = types.FirstOrDefault(t => t.Name == instanceType);
            return type is null ? ("instanceType", $"the {driver.Name} driver offers {Describe(types)}; not {instanceType}")
                : !Holds(type, shape) ? ("instanceType", $"{type.Name} has {type.Vcpus} vCPUs and {type.MemoryMiB} MiB, less than the {shape.Vcpus} vCPUs and {shape.MemoryMiB} MiB asked")
                : null;
        }

        return Smallest(types, shape) is null
            ? ("instanceType", $"no instance type the {driver.Name} driver offers holds {shape.Vcpus} vCPUs and {shape.MemoryMiB} MiB: {Describe(types)}")
            : null;
    }

    /// <summary>The region and instance type the machine gets (both null for a driver that runs machines on its host).</summary>
    public static (string? Region, string? InstanceType) Choose(DriverCapacity driver, string? region, string? instanceType, MachineShape shape) =>
        driver.Regions is { Count: > 0 } regions ? (region ?? regions[0], instanceType ?? Smallest(driver.InstanceTypes ?? [], shape)?.Name) : (null, null);

    private static InstanceType? Smallest(IReadOnlyList<InstanceType> types, MachineShape shape) =>
        types.Where(t => Holds(t, shape)).OrderBy(t => t.MemoryMiB).ThenBy(t => t.Vcpus).FirstOrDefault();

    private static bool Holds(InstanceType type, MachineShape shape) => type.Vcpus >= shape.Vcpus && type.MemoryMiB >= shape.MemoryMiB;

    private static string Describe(IReadOnlyList<InstanceType> types) =>
        types.Count == 0 ? "no instance type" : string.Join(", ", types.Select(t => $"{t.Name} ({t.Vcpus} vCPUs, {t.MemoryMiB} MiB)"));
}
