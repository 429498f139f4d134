using System.Globalization;

namespace Platform.Provisioning.Drivers.Sandbox;

/// <summary>
/// The host's user and group ids that sandboxes' user namespaces map to, and that micro-VMs' QEMUs run as: a range of
/// <see cref="Size"/> ids each, from <see cref="First"/> on, so that root in a sandbox (or a QEMU) is an id no host account
/// has, and no two live sandboxes or QEMUs share one, whichever agent started them. A range is leased by a file in <see cref="Directory"/> that names the sandbox's run
/// directory, which in turn names the range (<see cref="MapFile"/>); a lease whose run directory no longer names it is
/// stale (its sandbox was removed without releasing it) and is taken again. <c>/run</c> is emptied at boot, when no
/// sandbox runs any more.
/// </summary>
public sealed class IdRanges(string directory = IdRanges.DefaultDirectory)
{
    public const string DefaultDirectory = "/run/platform-id-ranges";
    public const long First = 1_000_000_000;
    public const int Size = 65536;
    public const int Count = 4096;

    /// <summary>The file in a sandbox's run directory that holds the number of its range.</summary>
    public const string MapFile = "idmap";

    private static readonly TimeSpan LockPatience = TimeSpan.FromSeconds(10);

    public string Directory => directory;

    /// <summary>Leases a free range for the sandbox whose run directory is <paramref name="runDirectory"/>, and writes its number there.</summary>
    public IdRange Lease(string runDirectory)
    {
        System.IO.Directory.CreateDirectory(directory);
        using var _ = Lock();
        for (var slot = 0; slot < Count; slot++)
        {
            var lease = LeaseFile(slot);
            if (File.Exists(lease) && IsHeld(lease, slot))
            {
                continue;
            }

            File.WriteAllText(lease, runDirectory);
            File.WriteAllText(Path.Combine(runDirectory, MapFile), slot.ToString(CultureInfo.InvariantCulture));
            return new IdRange(slot);
        }

        throw new IOException($"All {Count} id ranges for sandboxes are in use.");
    }

    /// <summary>The range the sandbox whose run directory is <paramref name="runDirectory"/> holds; null when it holds none.</summary>
    public IdRange? HeldBy(string runDirectory) =>
        SlotNamedIn(runDirectory) is { } slot && File.Exists(LeaseFile(slot)) && File.ReadAllText(LeaseFile(slot)) == runDirectory ? new IdRange(slot) : null;

    /// <summary>Gives back the range of the sandbox whose run directory is <paramref name="runDirectory"/>, before that directory is removed.</summary>
    public void Release(string runDirectory)
    {
        if (HeldBy(runDirectory) is { } range)
        {
            File.Delete(LeaseFile(range.Slot));
        }
    }

    /// <summary>
    /// Moves the run directory <paramref name="from"/>, and the range it holds with it, to <paramref name="to"/> (which must
    /// not exist): under the lock, so that no lease is taken while the range's lease names neither.
    /// </summary>
    public void Move(string from, string to)
    {
        System.IO.Directory.CreateDirectory(directory);
        using var _ = Lock();
        var range = HeldBy(from);
        System.IO.Directory.Move(from, to);
        if (range is not null)
        {
            File.WriteAllText(LeaseFile(range.Slot), to);
        }
    }

    private string LeaseFile(int slot) => Path.Combine(directory, slot.ToString(CultureInfo.InvariantCulture));

    private static bool IsHeld(string lease, int slot)
    {
        try
        {
            return SlotNamedIn(File.ReadAllText(lease)) == slot;
        }
        catch (FileNotFoundException)
        {
            return false;
        }
    }

    private static int? SlotNamedIn(string runDirectory)
    {
        try
        {
            return int.TryParse(File.ReadAllText(Path.Combine(runDirectory, MapFile)).Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var slot) ? slot : null;
        }
        catch (Exception exception) when (exception is FileNotFoundException or DirectoryNotFoundException or ArgumentException)
        {
            return null;
        }
    }

    /// <summary>Agents share the ranges: one leases at a time (an exclusive flock on a file, which .NET takes for FileShare.None).</summary>
    private FileStream Lock()
    {
        var deadline = DateTime.UtcNow + LockPatience;
        while (true)
        {
            try
            {
                return new FileStream(Path.Combine(directory, ".lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(5);
            }
        }
    }
}

/// <summary>One sandbox's ids on the host: root in the sandbox is <see cref="HostId"/>, and the next <see cref="IdRanges.Size"/> - 1 ids follow it.</summary>
public sealed record IdRange(int Slot)
{
    public long HostId => IdRanges.First + ((long)Slot * IdRanges.Size);

    /// <summary>The line of <c>/proc/PID/uid_map</c> (and <c>gid_map</c>) that maps the sandbox's ids onto the range.</summary>
    public string MapLine => FormattableString.Invariant($"0 {HostId} {IdRanges.Size}");
}
