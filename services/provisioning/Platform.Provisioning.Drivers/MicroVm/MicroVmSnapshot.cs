using System.Text.Json;

namespace Platform.Provisioning.Drivers.MicroVm;

/// <summary>
/// A micro-VM frozen while its /init waits for an identity on the serial console: the guest's memory, QEMU's device
/// state, and the shape it was taken with. Restoring needs the same template, vCPUs, memory, accelerator and QEMU.
/// Restored VMs map the memory file privately while they run: a snapshot's files are never rewritten, only deleted
/// (a deleted file lives on for the VMs that map it).
/// </summary>
public sealed record MicroVmSnapshot(string Directory, string TemplateVersion, int Vcpus, int MemoryMiB, string Accelerator, string CommandLine)
{
    private const string ManifestFile = "snapshot.json";

    public string MemoryPath => Path.Combine(Directory, "memory");

    public string StatePath => Path.Combine(Directory, "state");

    /// <summary>A checkpoint's copy of the VM's disk, if it had one: each machine made from the image starts on a copy of it.</summary>
    public string DiskPath => Path.Combine(Directory, "disk");

    public bool HasDisk => File.Exists(DiskPath);

    public static MicroVmSnapshot Load(string directory)
    {
        var file = Path.Combine(directory, ManifestFile);
        if (!File.Exists(file))
        {
            throw new FileNotFoundException($"{directory} holds no finished micro-VM snapshot (no {ManifestFile}).", file);
        }

        var snapshot = JsonSerializer.Deserialize<MicroVmSnapshot>(File.ReadAllText(file), JsonOptions)
            ?? throw new InvalidDataException($"{file} is empty.");
        return snapshot with { Directory = Path.GetFullPath(directory) };
    }

    /// <summary>Written last: a directory with a manifest holds a complete snapshot.</summary>
    internal void Save() =>
        File.WriteAllText(Path.Combine(Directory, ManifestFile), JsonSerializer.Serialize(this with { Directory = "." }, JsonOptions));

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web) { WriteIndented = true };
}
