using System.Text.Json;
using System.Text.Json.Serialization;

namespace Platform.Provisioning.Drivers.MicroVm;

/// <summary>
/// A built micro-VM template (see <c>templates/build-microvm-template</c>): a kernel, an initramfs whose /init takes
/// the guest's identity from the command line or the serial console, and the command line they boot with.
/// </summary>
public sealed record MicroVmTemplate(
    string Name,
    string Version,
    string Sha256,
    string KernelPath,
    string InitramfsPath,
    string CommandLine,
    int GuestAgentPort)
{
    /// <summary>The image whose root the guest runs on (from a disk copied from it), when the template was built from one; null for an initramfs template.</summary>
    public Templates.ImageTemplate? Image { get; init; }

    /// <summary>Reads <c>template.json</c> in <paramref name="directory"/> (a <c>current</c> link is resolved to its version).</summary>
    public static MicroVmTemplate Load(string directory)
    {
        var file = Path.Combine(directory, "template.json");
        if (!File.Exists(file))
        {
            throw new FileNotFoundException($"{directory} holds no micro-VM template (no template.json); build one with build-microvm-template.", file);
        }

        var root = new DirectoryInfo(directory).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Path.GetFullPath(directory);
        var manifest = JsonSerializer.Deserialize<Manifest>(File.ReadAllText(file), JsonOptions)
            ?? throw new InvalidDataException($"{file} is empty.");
        // A template built from an image boots with the default template's kernel and init, onto a copy of its root.
        if (manifest.Kind is not ("microvm" or Templates.ImageTemplate.Kind))
        {
            throw new InvalidDataException($"{file} describes a '{manifest.Kind}' template, not a micro-VM.");
        }

        var template = new MicroVmTemplate(
            manifest.Name,
            manifest.Version,
            manifest.Sha256,
            Path.Combine(root, manifest.Kernel),
            Path.Combine(root, manifest.Initramfs),
            manifest.CommandLine,
            manifest.GuestAgentPort)
        {
            Image = manifest.Kind == Templates.ImageTemplate.Kind ? Templates.ImageTemplate.Load(directory) : null,
        };
        foreach (var part in new[] { template.KernelPath, template.InitramfsPath })
        {
            if (!File.Exists(part))
            {
                throw new FileNotFoundException($"The template {template.Name} {template.Version} lacks {Path.GetFileName(part)}.", part);
            }
        }

        return template;
    }

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web) { UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip };

    private sealed record Manifest(string Name, string Kind, string Version, string Sha256, string Kernel, string Initramfs, string CommandLine, int GuestAgentPort);
}
