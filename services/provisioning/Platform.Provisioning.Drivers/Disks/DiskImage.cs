using System.Globalization;
using Platform.Provisioning.Drivers.Networking;

namespace Platform.Provisioning.Drivers.Disks;

/// <summary>
/// A machine's disk: a sparse file on the host holding an ext4 filesystem of the machine's <c>diskMiB</c>. Only the blocks
/// written take room on the host, and the filesystem's size is the limit of what the machine can fill: a micro-VM gets it as
/// its virtio-blk drive, a sandbox has it mounted (through a loop device) as its writable space.
/// </summary>
public static class DiskImage
{
    public const int MinSizeMiB = 16;

    /// <summary>
    /// Makes the disk at <paramref name="path"/> unless one of that size is there already (a machine started again keeps its
    /// disk). It is made under a temporary name and renamed when complete: a host that crashes meanwhile leaves no half-made
    /// disk at <paramref name="path"/>. <paramref name="rootOwner"/> owns the filesystem's root directory.
    /// </summary>
    /// <returns>Whether it was made now (false: the existing one is kept).</returns>
    public static async Task<bool> EnsureAsync(string path, int sizeMiB, long rootOwner = 0)
    {
        if (sizeMiB < MinSizeMiB)
        {
            throw new ArgumentOutOfRangeException(nameof(sizeMiB), sizeMiB, $"A disk has at least {MinSizeMiB} MiB.");
        }

        var bytes = (long)sizeMiB * 1024 * 1024;
        if (File.Exists(path) && new FileInfo(path).Length == bytes)
        {
            return false;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var making = path + ".making";
        try
        {
            using (var file = new FileStream(making, FileMode.Create, FileAccess.Write))
            {
                file.SetLength(bytes);
            }

            var owner = rootOwner.ToString(CultureInfo.InvariantCulture);
            // No blocks reserved for root (the machine's root is the tenant), inode tables and journal zeroed lazily by the
            // kernel instead of written out here: a gigabyte takes milliseconds, not seconds, and stays sparse.
            await HostTool.RunAsync(["mkfs.ext4", "-q", "-F", "-m", "0", "-L", "platform-disk",
                "-E", $"lazy_itable_init=1,lazy_journal_init=1,root_owner={owner}:{owner}", making]);
            File.Move(making, path, overwrite: true);
            return true;
        }
        finally
        {
            File.Delete(making);
        }
    }

    /// <summary>
    /// Makes the disk at <paramref name="path"/> as a copy of <paramref name="image"/> (an ext4 image: a template's root),
    /// grown to <paramref name="sizeMiB"/> when that is larger, unless the disk is there already (a machine started again
    /// keeps its disk). Made under a temporary name and renamed when complete.
    /// </summary>
    /// <returns>Whether it was made now.</returns>
    public static async Task<bool> EnsureCopyOfAsync(string path, string image, int sizeMiB, CancellationToken cancellationToken)
    {
        if (File.Exists(path))
        {
            return false;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var making = path + ".making";
        try
        {
            await CopySparseAsync(image, making, cancellationToken);
            var bytes = (long)sizeMiB * 1024 * 1024;
            if (bytes > new FileInfo(making).Length)
            {
                using (var file = new FileStream(making, FileMode.Open, FileAccess.Write))
                {
                    file.SetLength(bytes);
                }

                // A copy of an image just built and never mounted: nothing for a check to find first.
                await HostTool.RunAsync(["resize2fs", "-f", making]);
            }

            File.Move(making, path, overwrite: true);
            return true;
        }
        finally
        {
            File.Delete(making);
        }
    }

    /// <summary>Mounts the disk at <paramref name="mountPoint"/> (made if missing) through a loop device the kernel frees when it is unmounted; nothing on it can be a device or gain privileges.</summary>
    public static async Task MountAsync(string path, string mountPoint)
    {
        Directory.CreateDirectory(mountPoint);
        await HostTool.RunAsync(["mount", "-t", "ext4", "-o", "loop,nosuid,nodev,noatime", path, mountPoint]);
    }

    /// <summary>Unmounts what is mounted at <paramref name="mountPoint"/>, if anything; detached lazily, so that a process still holding a file of it does not keep it mounted.</summary>
    public static async Task UnmountAsync(string mountPoint)
    {
        if (IsMounted(mountPoint))
        {
            await HostTool.RunAsync(["umount", "--lazy", mountPoint]);
        }
    }

    public static bool IsMounted(string mountPoint)
    {
        var full = Path.GetFullPath(mountPoint).TrimEnd('/');
        // /proc/self/mountinfo: the fifth field is the mount point, with spaces and the like written as octal escapes.
        return File.ReadLines("/proc/self/mountinfo")
            .Select(line => line.Split(' '))
            .Any(fields => fields.Length > 4 && Unescape(fields[4]) == full);
    }

    /// <summary>Copies a disk, or a guest's memory file, keeping its holes (what was never written takes no room in the copy either).</summary>
    public static async Task CopySparseAsync(string from, string to, CancellationToken cancellationToken)
    {
        var copy = new System.Diagnostics.ProcessStartInfo("cp", ["--sparse=always", from, to]) { RedirectStandardError = true, UseShellExecute = false };
        using var process = System.Diagnostics.Process.Start(copy)!;
        var errors = await process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        if (process.ExitCode != 0)
        {
            throw new IOException($"{from} could not be copied to {to}: {errors.Trim()}");
        }
    }

    /// <summary>Removes the disk (and any half-made one) if it is there.</summary>
    public static void Delete(string path)
    {
        // File.Delete throws for a path whose folder is missing.
        if (!Directory.Exists(Path.GetDirectoryName(path)))
        {
            return;
        }

        File.Delete(path);
        File.Delete(path + ".making");
    }

    private static string Unescape(string field) =>
        System.Text.RegularExpressions.Regex.Replace(field, @"\\([0-7]{3})", m => ((char)Convert.ToInt32(m.Groups[1].Value, 8)).ToString());
}
