using System.Text.Json.Serialization;

namespace Platform.Provisioning.Drivers.Container;

/// <summary>
/// One reading of <c>GET /containers/{id}/stats?stream=false</c>: memory in use and its limit, CPU time used
/// (nanoseconds, since the container started) and the processes it runs. Docker spells these in snake_case.
/// </summary>
public sealed record ContainerStats(
    [property: JsonPropertyName("read")] DateTimeOffset Read,
    [property: JsonPropertyName("memory_stats")] ContainerMemoryStats Memory,
    [property: JsonPropertyName("cpu_stats")] ContainerCpuStats Cpu,
    [property: JsonPropertyName("pids_stats")] ContainerPidsStats Pids);

public sealed record ContainerMemoryStats(
    [property: JsonPropertyName("usage")] long Usage,
    [property: JsonPropertyName("limit")] long Limit);

public sealed record ContainerCpuStats(
    [property: JsonPropertyName("cpu_usage")] ContainerCpuUsage Usage,
    [property: JsonPropertyName("online_cpus")] int OnlineCpus);

public sealed record ContainerCpuUsage([property: JsonPropertyName("total_usage")] long TotalNanoseconds);

public sealed record ContainerPidsStats([property: JsonPropertyName("current")] long Current);
