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
    private readonly string _directory = Directory.CreateDirectory(Path.Combine(options.StatePath, "machines")).FullName;

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

    public void Forget(Guid machineId) => File.Delete(FileOf(machineId));

    private string FileOf(Guid machineId) => Path.Combine(_directory, $"{machineId}.json");
}

/// <summary>What the agent was asked to run, and whether it should be running now.</summary>
public sealed record MachineRecord(LaunchMachine Launch, bool Running);
