using System.Text.Json;
using System.Text.Json.Serialization;

namespace Platform.Provisioning.Drivers.Templates;

/// <summary>
/// A template built from an OCI image (see <c>templates/build-image-template</c>): the image's root filesystem as a tree
/// (a sandbox binds it read-only as its /) and as an ext4 image (a micro-VM's disk starts as a copy of it), what the image
/// runs, and the kernel and init that boot a micro-VM onto it.
/// </summary>
public sealed record ImageTemplate(
    string Name,
    string Version,
    string Sha256,
    string RootfsPath,
    string RootImagePath,
    int RootImageMiB,
    IReadOnlyList<string> Command,
    IReadOnlyDictionary<string, string> Environment,
    string? WorkingDirectory,
    string Directory)
{
    public const string Kind = "image";

    /// <summary>Reads <c>template.json</c> in <paramref name="directory"/> (a <c>current</c> link is resolved to its version).</summary>
    public static ImageTemplate Load(string directory)
    {
        var file = Path.Combine(directory, "template.json");
        var root = new DirectoryInfo(directory).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Path.GetFullPath(directory);
        var manifest = JsonSerializer.Deserialize<Manifest>(File.ReadAllText(file), JsonOptions)
            ?? throw new InvalidDataException($"{file} is empty.");
        if (manifest.Kind != Kind)
        {
            throw new InvalidDataException($"{file} describes a '{manifest.Kind}' template, not one built from an image.");
        }

        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in manifest.Env ?? [])
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0)
            {
                environment[pair[..equals]] = pair[(equals + 1)..];
            }
        }

        var template = new ImageTemplate(manifest.Name, manifest.Version, manifest.Sha256, Path.Combine(root, manifest.Rootfs), Path.Combine(root, manifest.RootImage),
            manifest.RootImageMiB, [.. manifest.Entrypoint ?? [], .. manifest.Cmd ?? []], environment,
            string.IsNullOrEmpty(manifest.WorkingDir) ? null : manifest.WorkingDir, root);
        if (!System.IO.Directory.Exists(template.RootfsPath) || !File.Exists(template.RootImagePath))
        {
            throw new FileNotFoundException($"The template {template.Name} {template.Version} lacks its root filesystem.", template.RootImagePath);
        }

        return template;
    }

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web) { UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip };

    private sealed record Manifest(
        string Name, string Kind, string Version, string Sha256, string Rootfs, string RootImage, int RootImageMiB,
        IReadOnlyList<string>? Entrypoint, IReadOnlyList<string>? Cmd, IReadOnlyList<string>? Env, string? WorkingDir);
}
