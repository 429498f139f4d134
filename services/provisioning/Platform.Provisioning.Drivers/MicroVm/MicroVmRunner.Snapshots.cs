using System.Net;
using Platform.Provisioning.Drivers.Networking;

namespace Platform.Provisioning.Drivers.MicroVm;

public sealed partial class MicroVmRunner
{
    /// <summary>
    /// Boots <paramref name="template"/> without an identity, in a namespace of its own that is removed afterwards, and
    /// saves it into <paramref name="directory"/> (which must be new or empty) once its /init waits for one. Put the
    /// directory on a tmpfs: restored VMs map its memory file.
    /// </summary>
    public async Task<MicroVmSnapshot> CreateSnapshotAsync(MicroVmTemplate template, int vcpus, int memoryMiB, string directory, CancellationToken cancellationToken)
    {
        ValidateShape(vcpus, memoryMiB);
        directory = Path.GetFullPath(directory);
        var work = Path.Combine(directory, "work");
        if (work.Length + "/serial.sock".Length > MaxSocketPath || directory.Contains(',', StringComparison.Ordinal))
        {
            throw new ArgumentException($"A snapshot directory is a path of at most {MaxSocketPath - 17} characters without ','.", nameof(directory));
        }

        if (Directory.Exists(directory) && Directory.EnumerateFileSystemEntries(directory).Any())
        {
            throw new InvalidOperationException($"The snapshot directory {directory} is not empty.");
        }

        var accelerator = await DetectAcceleratorAsync(template, cancellationToken);
        Directory.CreateDirectory(directory);
        var suffix = SuffixOf(directory);
        var snapshot = new MicroVmSnapshot(directory, template.Version, vcpus, memoryMiB, accelerator, template.CommandLine + " platform.identity=serial");
        NetworkNamespace? network = null;
        try
        {
            // The guest never uses its network before it is restored; the namespace only gives QEMU a tap to open.
            network = await NetworkNamespace.CreateAsync(SnapshotNamespacePrefix + suffix, "tap0", IPAddress.Parse("192.0.2.1"), 24);
            var spec = new MicroVmSpec(
                "snapshot-" + suffix,
                template,
                vcpus,
                memoryMiB,
                new GuestIdentity("snapshot-" + suffix, "snapshot", IPAddress.Parse("192.0.2.2"), 24, IPAddress.Parse("192.0.2.1"), "52:54:00:00:00:02"),
                network,
                work);
            CreateWorkDirectory(work);
            // The memory file is shared with the guest, so when QEMU stops it already holds the guest's memory.
            await using var vm = Start(spec, accelerator, null, new QemuLaunch(snapshot.CommandLine, snapshot.MemoryPath, SharedMemory: true, IncomingState: null, MakesSnapshot: true));
            await ReadyOrGoneAsync(vm, async token =>
            {
                var qmp = await vm.QmpAsync(token);
                using (var serial = await SerialConsole.ConnectAsync(vm.SerialSocketPath, vm.SerialLogPath, vm.Exited, token))
                {
                    await serial.WaitForLineAsync(AwaitingIdentity, token);
                }

                await IgnoreSharedMemoryAsync(qmp, token);
                await qmp.ExecuteAsync("stop", null, token);
                await qmp.ExecuteAsync("migrate", new { uri = "exec:cat > " + ShellQuote(snapshot.StatePath) }, token);
                await WaitForMigrationAsync(qmp, () => vm.Errors, token);
            }, cancellationToken);
            await vm.StopAsync(TimeSpan.FromSeconds(5), cancellationToken);
            snapshot.Save();
            return snapshot;
        }
        catch
        {
            foreach (var entry in Directory.EnumerateFileSystemEntries(directory))
            {
                if (Directory.Exists(entry))
                {
                    Directory.Delete(entry, recursive: true);
                }
                else
                {
                    File.Delete(entry);
                }
            }

            throw;
        }
        finally
        {
            if (network is not null)
            {
                await network.DeleteAsync();
            }
        }
    }

    private const string SnapshotNamespacePrefix = "microvm-snapshot-";

    /// <summary>
    /// Removes what making a snapshot into <paramref name="directory"/> left when its process died midway (its QEMU, cgroup,
    /// host ids and namespace, all named after the directory), and the directory. Nothing there is fine.
    /// </summary>
    public async Task RemoveUnfinishedSnapshotAsync(string directory, CancellationToken cancellationToken)
    {
        directory = Path.GetFullPath(directory);
        await MicroVm.RemoveLeftoverAsync(Path.Combine(directory, "work"), cancellationToken, Ids);
        await NetworkNamespace.DeleteAsync(SnapshotNamespacePrefix + SuffixOf(directory));
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>What names a snapshot's making (its VM and namespace): the same for the same directory, so that a later process finds them.</summary>
    private static string SuffixOf(string directory) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(directory)))[..12];

    /// <param name="errors">What QEMU said on its standard error, which often says more than the migration's own error.</param>
    private static async Task WaitForMigrationAsync(QmpClient qmp, Func<string> errors, CancellationToken cancellationToken)
    {
        while (true)
        {
            var migration = await qmp.ExecuteAsync("query-migrate", null, cancellationToken);
            switch (migration?["status"]?.GetValue<string>())
            {
                case "completed":
                    return;
                case "failed" or "cancelled":
                    throw new InvalidOperationException($"saving the snapshot failed: {migration["error-desc"]} {errors()}".TrimEnd());
            }

            await Task.Delay(2, cancellationToken);
        }
    }
}
