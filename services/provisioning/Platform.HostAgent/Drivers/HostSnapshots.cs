using System.Text.Json;

namespace Platform.HostAgent.Drivers;

/// <summary>
/// The snapshots this host keeps, each in a directory of its own under <c>{StatePath}/snapshots</c>: what its driver saved,
/// and a manifest written last, so that a directory without one (the agent died while saving) holds no snapshot.
/// </summary>
public sealed class HostSnapshots(string root)
{
    private const string ManifestFile = "platform-snapshot.json";
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public string DirectoryOf(Guid snapshotId) => Path.Combine(root, snapshotId.ToString("N"));

    /// <summary>The finished snapshot, or null when this host keeps none by that id.</summary>
    public SnapshotManifest? Find(Guid snapshotId)
    {
        var manifest = Path.Combine(DirectoryOf(snapshotId), ManifestFile);
        return File.Exists(manifest) ? JsonSerializer.Deserialize<SnapshotManifest>(File.ReadAllText(manifest), Json) : null;
    }

    /// <summary>A new, empty directory for the snapshot: what a save that did not finish left there goes first.</summary>
    public string Prepare(Guid snapshotId)
    {
        Delete(snapshotId);
        return Directory.CreateDirectory(DirectoryOf(snapshotId)).FullName;
    }

    public void Finish(SnapshotManifest manifest) =>
        File.WriteAllText(Path.Combine(DirectoryOf(manifest.SnapshotId), ManifestFile), JsonSerializer.Serialize(manifest, Json));

    public void Delete(Guid snapshotId)
    {
        if (Directory.Exists(DirectoryOf(snapshotId)))
        {
            Directory.Delete(DirectoryOf(snapshotId), recursive: true);
        }
    }

    /// <summary>The directory of a finished snapshot for a launch from it; throws, saying so, when this host keeps none.</summary>
    public string LaunchDirectoryOf(Guid snapshotId) => Find(snapshotId) is not null
        ? DirectoryOf(snapshotId)
        : throw new LaunchFailedException($"this host keeps no snapshot {snapshotId} (it was removed, or taken on another host)");
}

/// <summary>A snapshot this host keeps: of which machine, by which driver, what it holds and its size on disk.</summary>
public sealed record SnapshotManifest(Guid SnapshotId, Guid MachineId, string Driver, string Contents, long SizeBytes, DateTimeOffset SavedAt);
