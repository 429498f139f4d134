namespace Platform.HostAgent;

/// <summary>
/// This host: its id (made once and kept in the agent's state directory, so a restarted agent is the same
/// host) and what it has.
/// </summary>
public sealed record HostIdentity(Guid HostId, string Name, int Vcpus, int MemoryMiB, int DiskMiB)
{
    public static HostIdentity Load(AgentOptions options)
    {
        Directory.CreateDirectory(options.StatePath);
        var file = Path.Combine(options.StatePath, "host-id");
        if (!File.Exists(file) || !Guid.TryParse(File.ReadAllText(file).Trim(), out var hostId))
        {
            hostId = Guid.CreateVersion7();
            var temporary = file + ".tmp";
            File.WriteAllText(temporary, hostId.ToString());
            File.Move(temporary, file, overwrite: true);
        }

        var disk = new DriveInfo(Path.GetFullPath(options.StatePath));
        return new HostIdentity(hostId, options.HostName ?? Environment.MachineName, Environment.ProcessorCount, ReadMemoryMiB(),
            (int)Math.Min(int.MaxValue, disk.TotalSize / (1024 * 1024)));
    }

    private static int ReadMemoryMiB()
    {
        var total = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
        return (int)(long.Parse(total.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024);
    }
}
