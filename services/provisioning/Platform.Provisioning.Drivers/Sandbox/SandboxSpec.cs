namespace Platform.Provisioning.Drivers.Sandbox;

/// <summary>What a sandbox may use: memory (MiB, swap included), processes and threads, and CPUs (1.5 = one and a half cores).</summary>
public sealed record SandboxLimits(int MemoryMiB, int MaxProcesses, double Cpus)
{
    public void Validate()
    {
        if (MemoryMiB is < 16 or > 1024 * 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(MemoryMiB), MemoryMiB, "A sandbox needs 16 MiB to 1 TiB of memory.");
        }

        if (MaxProcesses is < 1 or > 1_000_000)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxProcesses), MaxProcesses, "A sandbox runs 1 to 1,000,000 processes.");
        }

        if (Cpus is < 0.01 or > 1024 || double.IsNaN(Cpus))
        {
            throw new ArgumentOutOfRangeException(nameof(Cpus), Cpus, "A sandbox uses 0.01 to 1024 CPUs.");
        }
    }
}

/// <summary>
/// One sandbox: <paramref name="Command"/> runs as its first process in new pid, network, uts, ipc and mount
/// namespaces, on the host's /usr read-only, with a private /tmp (in memory, charged to its memory limit) and a writable
/// /scratch: in memory too, or a disk of its own (<see cref="DiskMiB"/>).
/// </summary>
public sealed record SandboxSpec(string Id, IReadOnlyList<string> Command, SandboxLimits Limits, string Hostname)
{
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>A named network namespace (<c>ip netns</c>) to run in instead of a new, empty one: the sandbox's network.</summary>
    public string? NetworkNamespace { get; init; }

    /// <summary>
    /// A tar archive of files (a snapshot's, <see cref="SandboxRunner.SaveFilesAsync"/>) unpacked into the sandbox's
    /// <c>/scratch</c> before its command starts; null for an empty one.
    /// </summary>
    public string? Files { get; init; }

    /// <summary>
    /// When above 0, /scratch is a disk of this many MiB (an ext4 image in the sandbox's run directory, mounted through a
    /// loop device) instead of memory: what the sandbox writes there is limited by the disk's size and charged to no memory
    /// limit. It lasts as long as this run of the sandbox.
    /// </summary>
    public int DiskMiB { get; init; }

    /// <summary>
    /// A root filesystem (a template's, built from an image) bound read-only as the sandbox's <c>/</c> instead of the host's
    /// /usr; it must hold the mount points the sandbox binds over (<c>/proc</c>, <c>/dev</c>, <c>/tmp</c>, <c>/scratch</c>,
    /// <c>/.platform</c>). Null: the host's /usr.
    /// </summary>
    public string? Root { get; init; }

    /// <summary>Where its command starts; /scratch when null.</summary>
    public string? WorkingDirectory { get; init; }
}
