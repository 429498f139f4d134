namespace Platform.HostAgent.Telemetry;

/// <summary>A running machine whose driver can measure what it uses of the host (sandboxes by their cgroups, micro-VMs by their QEMU).</summary>
public interface ISampledMachine
{
    /// <summary>Its counters now; null when it has just ended (its process or cgroup is gone).</summary>
    MachineUsage? Sample();
}

/// <summary>
/// A machine's counters at one moment: CPU time and network bytes since it started (the reporter turns them into
/// rates), memory, its limit, processes (when countable) and disk in use now.
/// </summary>
public sealed record MachineUsage(long CpuNanoseconds, long MemoryBytes, long MemoryLimitBytes, int? Processes, long DiskBytes, long NetworkRxBytes, long NetworkTxBytes);
