using Docker.DotNet.Models;

namespace Platform.Provisioning.Drivers.Container;

/// <summary>What the platform reads from Docker.DotNet's models, in one place.</summary>
public static class ContainerModels
{
    /// <summary>An image's tags; an untagged image has none (podman and Docker spell that <c>&lt;none&gt;:&lt;none&gt;</c>, or leave the list out).</summary>
    public static IReadOnlyList<string> Tags(this ImagesListResponse image) =>
        image.RepoTags?.Where(t => t != "<none>:<none>").ToList() ?? [];

    /// <summary>The image id's 64 hex digits, without <c>sha256:</c>.</summary>
    public static string Sha256(this ImagesListResponse image) =>
        image.ID.StartsWith("sha256:", StringComparison.Ordinal) ? image.ID["sha256:".Length..] : image.ID;

    /// <summary>
    /// The container's address on its first network that gave it one; null when it has none (<c>none</c>). Docker fills
    /// the top-level address only for the default bridge, so the networks count too.
    /// </summary>
    public static EndpointSettings? PrimaryEndpoint(this NetworkSettings? settings) =>
        settings is null ? null
        : !string.IsNullOrEmpty(settings.IPAddress) ? new EndpointSettings { IPAddress = settings.IPAddress, IPPrefixLen = settings.IPPrefixLen, Gateway = settings.Gateway, MacAddress = settings.MacAddress }
        : settings.Networks?.Values.FirstOrDefault(n => !string.IsNullOrEmpty(n.IPAddress));
}
