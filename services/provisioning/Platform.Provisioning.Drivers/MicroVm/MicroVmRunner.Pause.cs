using System.Net.Sockets;

namespace Platform.Provisioning.Drivers.MicroVm;

public sealed partial class MicroVmRunner
{
    /// <summary>The socket in a jailed QEMU's root that it writes its paused state to (it can reach nothing else).</summary>
    private const string PauseSocketName = "pause.sock";

    /// <summary>No cap that a local disk could reach: 64 GiB/s.</summary>
    private const long LocalMigrationBytesPerSecond = 64L << 30;

    /// <summary>The guest's console log, kept with a paused VM's image while its work directory is gone.</summary>
    private const string PausedSerialLog = "serial.log";

    /// <summary>
    /// Pauses <paramref name="vm"/> to disk: its vCPUs stop, QEMU writes the guest's memory (zero pages as a mark only) and
    /// its device state into <paramref name="directory"/> (new or empty, on a disk: it is the point to free the host's
    /// memory) through a socket in its jail, then QEMU ends and the VM is disposed. Its console log moves with the image.
    /// Returns the image <see cref="ResumeAsync"/> starts it again from. When saving fails the VM runs on as it was and the
    /// directory is emptied.
    /// </summary>
    public async Task<PausedMicroVm> PauseAsync(MicroVm vm, string directory, CancellationToken cancellationToken)
    {
        var image = NewImageOf(vm, directory, "pause");
        directory = image.Directory;
        var qmp = await vm.QmpAsync(cancellationToken);
        // The guest agent's session goes on with the QEMU that resumes the guest: the guest never sees its port close.
        var agent = vm.TakeGuestAgent();
        var keptSession = false;
        try
        {
            await qmp.ExecuteAsync("stop", null, cancellationToken);
            keptSession = agent is not null && await agent.SuspendAsync(cancellationToken);
            await SaveStoppedAsync(vm, qmp, image, cancellationToken);
        }
        catch
        {
            if (keptSession)
            {
                agent!.ResumeOn(null);
            }

            if (agent is not null)
            {
                vm.GiveGuestAgent(agent);
            }

            await ResumeInPlaceAsync(vm, qmp);
            Directory.Delete(directory, recursive: true);
            throw;
        }

        if (File.Exists(vm.SerialLogPath))
        {
            File.Copy(vm.SerialLogPath, Path.Combine(directory, PausedSerialLog));
        }

        image.Save();
        await vm.StopAsync(TimeSpan.FromSeconds(5), cancellationToken);
        await vm.DisposeAsync();
        if (agent is not null && !keptSession)
        {
            await agent.DisposeAsync();
        }

        return new PausedMicroVm(image, keptSession ? agent : null);
    }

    /// <summary>
    /// Starts the VM paused into <paramref name="image"/> again as <paramref name="spec"/> (the same machine: its identity,
    /// namespace and work directory), and returns once its guest runs on from where it stopped. The image stays: the caller
    /// removes it once the VM is its machine again. The guest's clock is behind by the time it was paused until it is set.
    /// </summary>
    public async Task<MicroVm> ResumeAsync(PausedMicroVm paused, MicroVmSpec spec, CancellationToken cancellationToken)
    {
        var keptLog = Path.Combine(paused.Image.Directory, PausedSerialLog);
        return await StartFromImageAsync(paused.Image, spec, paused.GuestAgent, File.Exists(keptLog) ? keptLog : null, afterwards: null, cancellationToken);
    }

    /// <summary>
    /// Starts a QEMU for <paramref name="spec"/> that takes <paramref name="image"/>'s device state and memory, lets the guest
    /// run on, and then, if given, runs <paramref name="afterwards"/> before the VM counts as up. An image with a memory file is
    /// mapped privately: the guest reads its pages as it touches them, and what it writes stays in this QEMU (so many VMs can
    /// start from one image). Without one the memory comes in the stream, into a memory file of its own. A guest agent whose
    /// session was suspended (<paramref name="agent"/>) goes on over the new QEMU's port.
    /// </summary>
    private async Task<MicroVm> StartFromImageAsync(
        MicroVmSnapshot image, MicroVmSpec spec, Guests.GuestAgent? agent, string? serialLog, Func<MicroVm, CancellationToken, Task>? afterwards, CancellationToken cancellationToken)
    {
        Validate(spec);
        ValidateSnapshotOf(image, spec.Template, spec.Vcpus, spec.MemoryMiB, nameof(spec));
        var lazy = File.Exists(image.MemoryPath);
        var ownMemory = lazy ? null : MemoryFileOf(spec.Id);
        CreateWorkDirectory(spec.WorkDirectory);
        if (serialLog is not null)
        {
            File.Copy(serialLog, Path.Combine(spec.WorkDirectory, PausedSerialLog));
        }

        var vm = Start(spec, image.Accelerator, ownMemory,
            new QemuLaunch(image.CommandLine, ownMemory ?? image.MemoryPath, SharedMemory: !lazy, IncomingState: image.StatePath));
        return await ReadyOrGoneAsync(vm, async token =>
        {
            var qmp = await vm.QmpAsync(token);
            if (lazy)
            {
                await IgnoreSharedMemoryAsync(qmp, token);
            }

            await qmp.ExecuteAsync("migrate-incoming", new { uri = "fd:" + IncomingStateDescriptor }, token);
            await WaitForRunStateAsync(qmp, "paused", token);
            if (agent is not null)
            {
                // Connected before the guest runs again: its port was open when it stopped and is open when it goes on.
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(vm.GuestAgentSocketPath), token);
                agent.ResumeOn(socket);
                vm.GiveGuestAgent(agent);
            }

            await qmp.ExecuteAsync("cont", null, token);
            if (afterwards is not null)
            {
                await afterwards(vm, token);
            }
        }, cancellationToken, isBoot: false);
    }

    /// <summary>The image of <paramref name="vm"/> to be saved into <paramref name="directory"/>, made if need be; it must be empty.</summary>
    private static MicroVmSnapshot NewImageOf(MicroVm vm, string directory, string what)
    {
        directory = Path.GetFullPath(directory);
        if (Directory.Exists(directory) && Directory.EnumerateFileSystemEntries(directory).Any())
        {
            throw new InvalidOperationException($"The {what} directory {directory} is not empty.");
        }

        Directory.CreateDirectory(directory);
        return new MicroVmSnapshot(directory, vm.Spec.Template.Version, vm.Spec.Vcpus, vm.Spec.MemoryMiB, vm.Accelerator, vm.Spec.Template.CommandLine);
    }

    /// <summary>
    /// Writes the stopped VM's device state (and, unless its memory is shared with a file of this host's memory directory,
    /// its memory) into <paramref name="image"/> through a socket in its jail, and copies a shared memory file next to it,
    /// keeping its holes. The VM stays stopped; the caller lets it run again or ends it.
    /// </summary>
    private static async Task SaveStoppedAsync(MicroVm vm, QmpClient qmp, MicroVmSnapshot image, CancellationToken cancellationToken)
    {
        var (socketPath, uri) = PauseSocketOf(vm);
        File.Delete(socketPath);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        listener.Listen(1);
        // A jailed QEMU runs as an id of its own: the socket must let it connect. (Micro-VMs run on Linux only.)
        if (OperatingSystem.IsLinux())
        {
            File.SetUnixFileMode(socketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite
                | UnixFileMode.OtherRead | UnixFileMode.OtherWrite);
        }

        var sharedMemory = vm.MemoryFile;
        try
        {
            // Memory shared with a file in this host's memory directory is copied out as a file (which a resume maps: only the
            // pages the guest touches are read); any other goes into the stream.
            await qmp.ExecuteAsync("migrate-set-capabilities", new { capabilities = new[] { new { capability = "x-ignore-shared", state = sharedMemory is not null } } }, cancellationToken);
            // QEMU caps a migration at 128 MiB/s by default, meant for a network between hosts; this one goes to a local file.
            await qmp.ExecuteAsync("migrate-set-parameters", new Dictionary<string, object> { ["max-bandwidth"] = LocalMigrationBytesPerSecond }, cancellationToken);
            await qmp.ExecuteAsync("migrate", new { uri }, cancellationToken);
            using (var connection = await listener.AcceptAsync(cancellationToken).AsTask().WaitAsync(TimeSpan.FromSeconds(10), cancellationToken))
            await using (var state = new FileStream(image.StatePath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                await new NetworkStream(connection, ownsSocket: false).CopyToAsync(state, 1 << 20, cancellationToken);
                await state.FlushAsync(cancellationToken);
            }

            await WaitForMigrationAsync(qmp, () => vm.Errors, cancellationToken);
            if (sharedMemory is not null)
            {
                // The vCPUs are stopped and the devices' state is out: the file holds the guest's memory as it stopped.
                await Disks.DiskImage.CopySparseAsync(sharedMemory, image.MemoryPath, cancellationToken);
            }
        }
        catch (TimeoutException timeout)
        {
            throw new InvalidOperationException("QEMU did not write its state out within 10 s", timeout);
        }
        finally
        {
            File.Delete(socketPath);
        }
    }

    /// <summary>Where the host listens for a VM's paused state, and the URI its QEMU reaches it by (from inside its jail, if it has one).</summary>
    private static (string SocketPath, string Uri) PauseSocketOf(MicroVm vm)
    {
        var jailRoot = Path.Combine(vm.Spec.WorkDirectory, JailRoot);
        return Directory.Exists(jailRoot)
            ? (Path.Combine(jailRoot, PauseSocketName), "unix:/" + PauseSocketName)
            : (Path.Combine(vm.Spec.WorkDirectory, PauseSocketName), "unix:" + Path.Combine(vm.Spec.WorkDirectory, PauseSocketName));
    }

    /// <summary>A pause that could not be saved: the migration is cancelled and the guest's vCPUs run again.</summary>
    private static async Task ResumeInPlaceAsync(MicroVm vm, QmpClient qmp)
    {
        if (vm.Exited.IsCompleted)
        {
            return;
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await qmp.ExecuteAsync("migrate_cancel", null, timeout.Token);
            await qmp.ExecuteAsync("cont", null, timeout.Token);
        }
        catch (Exception exception) when (exception is IOException or InvalidOperationException or SocketException or OperationCanceledException)
        {
            // QEMU went away meanwhile: the VM's exit says so.
        }
    }
}

/// <summary>
/// A micro-VM paused to disk: its image (memory and device state) and, while this process of the agent lives, the host's end
/// of its guest agent with the session the guest's commands run in (null after the agent restarted: the next command opens a
/// new session, which ends what the last one ran).
/// </summary>
public sealed record PausedMicroVm(MicroVmSnapshot Image, Guests.GuestAgent? GuestAgent);
