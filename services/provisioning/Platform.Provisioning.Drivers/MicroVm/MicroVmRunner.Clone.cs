using System.Globalization;
using System.Security.Cryptography;

namespace Platform.Provisioning.Drivers.MicroVm;

public sealed partial class MicroVmRunner
{
    /// <summary>
    /// What a clone's guest runs, as root, to become a machine of its own: its old addresses, routes and neighbours go, it
    /// takes the new MAC, address, route, clock, hostname and machine id, and the host's random bytes are credited to its
    /// entropy pool and its generator reseeded at once (a clone starts with its parent's generator: without that, clones
    /// draw the same numbers until its next periodic reseed, up to a minute later).
    /// </summary>
    private const string TakeIdentityScript = """
        set -e
        ip addr flush dev eth0
        ip route flush dev eth0
        ip neigh flush dev eth0
        ip link set eth0 address "$5"
        ip addr add "$3" dev eth0
        [ -z "$4" ] || ip route add default via "$4"
        date -u -s "@$6" >/dev/null
        echo "$2" >/proc/sys/kernel/hostname
        echo "$2" >/etc/hostname
        echo "$1" >/etc/machine-id
        platform-guest-agent --reseed "$7"
        echo "platform-guest id=$1 hostname=$2 ip=${3%/*}" >/run/platform-guest
        """;

    /// <summary>
    /// Saves <paramref name="vm"/> as it is now into <paramref name="directory"/> (new or empty) and lets it run on: its
    /// vCPUs stop while QEMU writes its device state and its memory is copied out, then go on. New machines start from the
    /// image (<see cref="CloneAsync"/>), each as itself. When saving fails the VM runs on and the directory is removed.
    /// </summary>
    public async Task<MicroVmSnapshot> CheckpointAsync(MicroVm vm, string directory, CancellationToken cancellationToken)
    {
        var image = NewImageOf(vm, directory, "checkpoint");
        var qmp = await vm.QmpAsync(cancellationToken);
        try
        {
            await qmp.ExecuteAsync("stop", null, cancellationToken);
            await SaveStoppedAsync(vm, qmp, image, cancellationToken);
            // The migration flushed the drive and QEMU writes nothing to it while the vCPUs stand: the copy is the disk as the
            // memory knows it.
            if (vm.Spec.DiskPath is { } disk)
            {
                await Disks.DiskImage.CopySparseAsync(disk, image.DiskPath, cancellationToken);
            }

            image.Save();
            return image;
        }
        catch
        {
            Directory.Delete(image.Directory, recursive: true);
            throw;
        }
        finally
        {
            // Also after a migration that completed: QEMU lets a source run again.
            await ResumeInPlaceAsync(vm, qmp);
        }
    }

    /// <summary>
    /// Copies <paramref name="image"/> (a paused machine's, or a checkpoint) into <paramref name="directory"/> (new or empty),
    /// keeping the memory file's holes, and returns the copy: machines cloned from it do not depend on the original. A paused
    /// machine's disk is not in its image: <paramref name="disk"/> names it, and it is copied along.
    /// </summary>
    public static async Task<MicroVmSnapshot> CopyImageAsync(MicroVmSnapshot image, string directory, string? disk, CancellationToken cancellationToken)
    {
        directory = Path.GetFullPath(directory);
        Directory.CreateDirectory(directory);
        var copy = image with { Directory = directory };
        File.Copy(image.StatePath, copy.StatePath);
        if (File.Exists(image.MemoryPath))
        {
            await Disks.DiskImage.CopySparseAsync(image.MemoryPath, copy.MemoryPath, cancellationToken);
        }

        if ((image.HasDisk ? image.DiskPath : disk) is { } from)
        {
            await Disks.DiskImage.CopySparseAsync(from, copy.DiskPath, cancellationToken);
        }

        copy.Save();
        return copy;
    }

    /// <summary>
    /// Starts a new machine, <paramref name="spec"/>, from the image of another (a checkpoint or a paused machine's image):
    /// its guest runs on from where the image was taken, with the processes and files it had, and takes the spec's
    /// identity (id, hostname, address, MAC, machine id, the host's clock, fresh entropy) through its guest agent before
    /// the VM counts as up. Returns once its agent answers on the new address as the new machine. What the image's guest
    /// ran through the guest agent ends (the first command opens a new session); detached processes run on.
    /// </summary>
    /// <remarks>An image with a disk needs a spec whose disk is a copy of the image's (and one without, a spec without).</remarks>
    public Task<MicroVm> CloneAsync(MicroVmSnapshot image, MicroVmSpec spec, CancellationToken cancellationToken) =>
        image.HasDisk != spec.DiskPath is not null
            ? throw new ArgumentException(image.HasDisk ? "The image has a disk: the clone needs a copy of it." : "The image has no disk: a clone of it has none.", nameof(spec))
            : StartFromImageAsync(image, spec, agent: null, serialLog: null, TakeIdentityAsync, cancellationToken);

    private async Task TakeIdentityAsync(MicroVm vm, CancellationToken cancellationToken)
    {
        var identity = vm.Spec.Identity;
        var command = new Guests.GuestCommand([
            // Found on PATH: an image's root may have no /bin/sh; the guest's busybox is there after the root's own tools.
            "sh", "-c", TakeIdentityScript, "platform-identity", identity.MachineId, identity.Hostname, $"{identity.Address}/{identity.PrefixLength}",
            identity.Gateway.ToString(), identity.Mac, Clock.GetUtcNow().ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture),
            Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(64)),
        ]);
        await using var process = await vm.StartAsync(command, cancellationToken);
        process.StandardInput.Close();
        var errors = new StreamReader(process.StandardError).ReadToEndAsync(cancellationToken);
        var output = process.StandardOutput.CopyToAsync(Stream.Null, cancellationToken);
        var exitCode = await process.Exited.WaitAsync(cancellationToken);
        await output;
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"the clone's guest could not take its identity (exit code {exitCode}): {(await errors).Trim()}");
        }

        await ProbeAsync(vm.Spec, cancellationToken);
    }
}
