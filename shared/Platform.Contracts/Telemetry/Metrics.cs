namespace Platform.Contracts.Telemetry;

/// <summary>
/// One machine's use of its host over the last interval, as its host agent measured it: CPU as the average
/// number of cores busy, memory and disk as they were at the end, network as the bytes the machine received
/// and sent during the interval. <paramref name="Processes"/> only where the agent can count them (a sandbox's
/// cgroup; a micro-VM's guest is opaque). <paramref name="RunningCommands"/>: the commands run through the API (exec) that
/// still run at the end of the interval.
/// </summary>
public sealed record MachineSample(
    Guid MachineId,
    Guid TenantId,
    string Driver,
    double CpuCores,
    long MemoryBytes,
    long MemoryLimitBytes,
    int? Processes,
    long DiskBytes,
    long NetworkRxBytes,
    long NetworkTxBytes,
    int RunningCommands = 0);

/// <summary>What the host itself had in use at the end of the interval: cores busy (average), memory, and the machines on it.</summary>
public sealed record HostSample(double CpuCores, int Vcpus, long MemoryBytes, long MemoryTotalBytes, int Machines);

/// <summary>
/// A host agent's report, once per <c>Platform:Agent:MetricsInterval</c>: every running machine's sample and the
/// host's, over the <paramref name="IntervalSeconds"/> that ended at <paramref name="SampledAt"/>. A plain message
/// (metrics are measurements, not audited facts); telemetry stores it as metric series.
/// </summary>
public sealed record MachineMetricsReported(Guid HostId, DateTimeOffset SampledAt, double IntervalSeconds, IReadOnlyList<MachineSample> Machines, HostSample Host);
