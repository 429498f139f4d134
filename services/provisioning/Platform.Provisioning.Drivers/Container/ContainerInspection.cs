using System.Text.Json.Serialization;

namespace Platform.Provisioning.Drivers.Container;

/// <summary>What <c>GET /containers/{id}/json</c> says about a container: the parts the platform reads.</summary>
public sealed record ContainerInspection(
    string Id,
    string Name,
    ContainerState State,
    ContainerConfig Config,
    ContainerHostConfig HostConfig,
    ContainerNetworkSettings? NetworkSettings);

/// <summary>
/// Where a container is in its life (<c>created</c>, <c>running</c>, <c>exited</c>…), and how it ended.
/// <paramref name="OomKilled"/> is the engine's word: Docker sets it; podman before 5.0 does not (containers/podman#13102).
/// </summary>
public sealed record ContainerState(
    string Status,
    bool Running,
    [property: JsonPropertyName("OOMKilled")] bool OomKilled,
    int ExitCode,
    string? Error,
    int Pid);

public sealed record ContainerConfig(
    string? Image,
    string? Hostname,
    bool Tty,
    IReadOnlyList<string>? Cmd,
    IReadOnlyDictionary<string, string>? Labels);

public sealed record ContainerHostConfig(long Memory, long MemorySwap, long NanoCpus, long? PidsLimit, string? NetworkMode, string? CgroupParent);

/// <summary>
/// The container's network. Docker fills the top-level address only for the default bridge, so the first
/// network with an address in <paramref name="Networks"/> counts too (<see cref="PrimaryEndpoint"/>).
/// </summary>
public sealed record ContainerNetworkSettings(
    string? SandboxKey,
    string? IPAddress,
    int IPPrefixLen,
    string? Gateway,
    string? MacAddress,
    IReadOnlyDictionary<string, ContainerEndpoint>? Networks)
{
    /// <summary>The container's address on its first network that gave it one; null when it has none (<c>none</c>).</summary>
    public ContainerEndpoint? PrimaryEndpoint =>
        !string.IsNullOrEmpty(IPAddress) ? new ContainerEndpoint(IPAddress, IPPrefixLen, Gateway, MacAddress)
        : Networks?.Values.FirstOrDefault(n => !string.IsNullOrEmpty(n.IPAddress));
}

public sealed record ContainerEndpoint(string? IPAddress, int IPPrefixLen, string? Gateway, string? MacAddress);

/// <summary>One line of <c>GET /containers/json</c>.</summary>
public sealed record ContainerSummary(string Id, IReadOnlyList<string> Names, string Image, string State, IReadOnlyDictionary<string, string>? Labels);
