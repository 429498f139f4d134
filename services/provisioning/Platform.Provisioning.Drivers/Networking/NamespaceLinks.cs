using System.Text.Json;

namespace Platform.Provisioning.Drivers.Networking;

/// <summary>The links of one namespace (this process's own when none is named).</summary>
internal static class NamespaceLinks
{
    /// <summary>Their names; none when the namespace is gone.</summary>
    public static async Task<IReadOnlyList<string>> NamesAsync(string? networkNamespace)
    {
        if (networkNamespace is not null && !Exists(networkNamespace))
        {
            return [];
        }

        string[] scope = networkNamespace is null ? [] : ["-n", networkNamespace];
        var output = await HostTool.RunAsync(["ip", .. scope, "-j", "link", "show"]);
        using var links = JsonDocument.Parse(output);
        return links.RootElement.EnumerateArray().Select(l => l.GetProperty("ifname").GetString()).OfType<string>().ToArray();
    }

    public static bool Exists(string networkNamespace) => File.Exists(Path.Combine("/var/run/netns", networkNamespace));
}
