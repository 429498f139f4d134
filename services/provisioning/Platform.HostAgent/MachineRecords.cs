using System.Text.Json;
using Platform.Contracts;
using Platform.Contracts.Provisioning;

namespace Platform.HostAgent;

/// <summary>
/// The agent's own record of the machines on this host (one file each, written before anything is created
/// and removed after everything is gone), so that a restarted agent knows what to clean up.
/// </summary>
public sealed class MachineRecords(AgentOptions options)
{
    private static readonly TimeSpan TombstoneLife = TimeSpan.FromDays(7);
    private readonly string _directory = Directory.CreateDirectory(Path.Combine(options.StatePath, "machines")).FullName;
    private readonly string _tornDown = Directory.CreateDirectory(Path.Combine(options.StatePath, "torn-down")).FullName;

    public void Save(MachineRecord record)
    {
        var file = FileOf(record.Launch.MachineId);
        File.WriteAllText(file + ".tmp", JsonSerializer.Serialize(record, PlatformJson.Options));
        File.Move(file + ".tmp", file, overwrite: true);
    }

    public MachineRecord? Find(Guid machineId) =>
        File.Exists(FileOf(machineId)) ? JsonSerializer.Deserialize<MachineRecord>(File.ReadAllText(FileOf(machineId)), PlatformJson.Options) : null;

    public IReadOnlyList<MachineRecord> All() =>
        Directory.EnumerateFiles(_directory, "*.json").Select(f => JsonSerializer.Deserialize<MachineRecord>(File.ReadAllText(f), PlatformJson.Options)!).ToList();

    /// <summary>The machine is gone for good: its record goes, and a tombstone stays so that a late launch of it is refused.</summary>
    public void Forget(Guid machineId)
    {
        File.WriteAllText(Path.Combine(_tornDown, machineId.ToString()), "");
        File.Delete(FileOf(machineId));
    }

    public bool WasTornDown(Guid machineId) => File.Exists(Path.Combine(_tornDown, machineId.ToString()));

    /// <summary>Tombstones outlive any redelivery by far; older ones go.</summary>
    public void PruneTombstones(DateTime now)
    {
        foreach (var tombstone in new DirectoryInfo(_tornDown).EnumerateFiles().Where(f => now - f.LastWriteTimeUtc > TombstoneLife))
        {
            tombstone.Delete();
        }
    }

    private string FileOf(Guid machineId) => Path.Combine(_directory, $"{machineId}.json");
}

/// <summary>What the agent was asked to run, and whether it should be running now.</summary>
public sealed record MachineRecord(LaunchMachine Launch, bool Running);
