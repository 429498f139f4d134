namespace Platform.Provisioning.Drivers.Container;

/// <summary>
/// A container to create: its <paramref name="Image"/> by reference or id, the command that replaces the image's
/// <c>CMD</c> (null keeps it), and its limits. <paramref name="NetworkMode"/> is Docker's (<c>none</c>, <c>bridge</c>,
/// a network's name); <paramref name="CgroupParent"/> null leaves the engine's default. <paramref name="UserNamespace"/>
/// is the engine's user-namespace mode (podman's <c>auto</c>: root in the container is an unprivileged host id of a
/// range of its own); null leaves the engine's default. <paramref name="GuestAgent"/> is the host's guest agent binary:
/// when the image runs as root, the agent becomes the container's first process (bound in read-only), runs the image's
/// entrypoint and command as its main process, and forks what is exec'd; null runs the image as it is.
/// </summary>
public sealed record ContainerSpec(
    string Name,
    string Image,
    IReadOnlyList<string>? Command,
    IReadOnlyDictionary<string, string> Labels,
    ContainerLimits Limits,
    string NetworkMode = "none",
    string? Hostname = null,
    string? CgroupParent = null,
    string? UserNamespace = null,
    string? GuestAgent = null)
{
    /// <summary>When above 0, the size its writable layer may grow to (the engine's <c>size</c> storage option; see <see cref="ContainerEngine.LimitsWritableLayerAsync"/>).</summary>
    public int DiskMiB { get; init; }
}

/// <summary>
/// What a container may use: memory (swap included: the container gets no swap beyond it), CPU in cores
/// (0.5 = half a core), and how many processes and threads it may run.
/// </summary>
public sealed record ContainerLimits(long MemoryBytes, double Cpus, int MaxProcesses);
