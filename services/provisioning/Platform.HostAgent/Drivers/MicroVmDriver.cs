using System.Collections.Concurrent;
using System.Net;
using Platform.Contracts.Provisioning;
using Platform.Provisioning.Drivers.MicroVm;
using Platform.Provisioning.Drivers.Networking;

namespace Platform.HostAgent.Drivers;

/// <summary>
/// Micro-VMs: QEMU's microvm machine in a network namespace of the machine's own, booted cold or restored
/// from a ready snapshot of its template and shape (the snapshot's guest waits for an identity, so every
/// restored machine takes its own address, MAC, hostname and id before it reports ready).
/// </summary>
public sealed class MicroVmDriver(
    MicroVmRunner runner,
    IReadOnlyList<MicroVmTemplate> templates,
    IReadOnlyList<MachineShape> snapshotShapes,
    LocalAddresses addresses,
    string runPath,
    ILogger logger) : IMachineDriver
{
    private const string Tap = "tap0";
    private readonly ConcurrentDictionary<(string Version, int Vcpus, int MemoryMiB), MicroVmSnapshot> _snapshots = new();
    private string? _accelerator;

    public DriverCapacity Capacity { get; } = new("microvm", "microvm", MaxVcpus: Environment.ProcessorCount, MinMemoryMiB: 64, MaxMemoryMiB: 16 * 1024, MaxDiskMiB: 0);

    public string? Accelerator => _accelerator;

    public IReadOnlyList<TemplateOnHost> Templates => templates
        .Select(t => new TemplateOnHost(t.Name, t.Version, "microvm", t.Sha256,
            _snapshots.Keys.Where(k => k.Version == t.Version).Select(k => new MachineShape(k.Vcpus, k.MemoryMiB, 0)).OrderBy(s => s.MemoryMiB).ToList()))
        .ToList();

    private string SnapshotRoot => Path.Combine(runPath, "snapshots");

    /// <summary>Finds out which accelerator works here, then makes the snapshots machines of the configured shapes start from.</summary>
    public async Task PrepareAsync(CancellationToken cancellationToken)
    {
        foreach (var template in templates)
        {
            _accelerator = await runner.DetectAcceleratorAsync(template, cancellationToken);
            foreach (var shape in snapshotShapes)
            {
                var directory = Path.Combine(SnapshotRoot, $"{template.Version}-{shape.Vcpus}x{shape.MemoryMiB}");
                try
                {
                    if (Directory.Exists(directory))
                    {
                        Directory.Delete(directory, recursive: true);
                    }

                    var snapshot = await runner.CreateSnapshotAsync(template, shape.Vcpus, shape.MemoryMiB, directory, cancellationToken);
                    _snapshots[(template.Version, shape.Vcpus, shape.MemoryMiB)] = snapshot;
                    logger.LogInformation("Snapshot of {Template}@{Version} for {Vcpus} vCPU / {MemoryMiB} MiB ready", template.Name, template.Version, shape.Vcpus, shape.MemoryMiB);
                }
                catch (Exception exception) when (exception is MicroVmException or IOException or InvalidOperationException)
                {
                    logger.LogError(exception, "No snapshot of {Template}@{Version} for {Vcpus} vCPU / {MemoryMiB} MiB: machines of that shape boot cold",
                        template.Name, template.Version, shape.Vcpus, shape.MemoryMiB);
                }
            }
        }
    }

    public async Task<IRunningMachine> LaunchAsync(LaunchMachine launch, CancellationToken cancellationToken)
    {
        var template = templates.FirstOrDefault(t => t.Name == launch.Template.Name && t.Version == launch.Template.Version)
            ?? throw new LaunchFailedException($"this host does not hold template {launch.Template.Name}@{launch.Template.Version}");
        var attachment = launch.Network ?? addresses.For(launch.MachineId);
        var identity = new GuestIdentity(launch.MachineId.ToString("N"), launch.Name, IPAddress.Parse(attachment.Address), attachment.PrefixLength,
            IPAddress.Parse(attachment.Gateway), attachment.Mac);
        await RemoveNamespaceAsync(attachment.Namespace);
        var network = await NetworkNamespace.CreateAsync(attachment.Namespace, Tap, identity.Gateway, attachment.PrefixLength);
        try
        {
            var spec = new MicroVmSpec(launch.MachineId.ToString("N"), template, launch.Shape.Vcpus, launch.Shape.MemoryMiB, identity, network, WorkDirectoryOf(launch.MachineId));
            if (Directory.Exists(spec.WorkDirectory))
            {
                Directory.Delete(spec.WorkDirectory, recursive: true);
            }

            var fromSnapshot = launch.Boot != "cold" && _snapshots.TryGetValue((template.Version, launch.Shape.Vcpus, launch.Shape.MemoryMiB), out var snapshot) ? snapshot : null;
            var vm = fromSnapshot is not null ? await runner.RestoreAsync(fromSnapshot, spec, cancellationToken) : await runner.BootAsync(spec, cancellationToken);
            return new RunningMicroVm(vm, network, attachment, fromSnapshot is null ? "cold" : "snapshot");
        }
        catch (Exception exception)
        {
            await network.DeleteAsync();
            throw exception switch
            {
                MicroVmException failed => new LaunchFailedException($"the micro-VM did not come up: {failed.Message}", failed),
                ArgumentException invalid => new LaunchFailedException($"the micro-VM cannot be made: {invalid.Message}", invalid),
                _ => exception,
            };
        }
    }

    /// <summary>QEMU processes are found by the machine's id on their command line (its memory file and sockets carry it).</summary>
    public async Task RemoveLeftoversAsync(Guid machineId, CancellationToken cancellationToken)
    {
        var id = machineId.ToString("N");
        foreach (var process in System.Diagnostics.Process.GetProcessesByName("qemu-system-x86_64"))
        {
            using (process)
            {
                var commandLine = File.Exists($"/proc/{process.Id}/cmdline") ? await File.ReadAllTextAsync($"/proc/{process.Id}/cmdline", cancellationToken) : "";
                if (commandLine.Contains(id, StringComparison.Ordinal))
                {
                    process.Kill();
                    await process.WaitForExitAsync(cancellationToken);
                }
            }
        }

        await RemoveNamespaceAsync(LocalAddresses.NamespaceOf(machineId));
        if (Directory.Exists(WorkDirectoryOf(machineId)))
        {
            Directory.Delete(WorkDirectoryOf(machineId), recursive: true);
        }

        foreach (var memory in Directory.Exists(runPath) ? Directory.EnumerateFiles(runPath, $"*{id}*", SearchOption.AllDirectories) : [])
        {
            File.Delete(memory);
        }
    }

    public async Task CleanUpAsync(Guid machineId, CancellationToken cancellationToken)
    {
        await RemoveLeftoversAsync(machineId, cancellationToken);
        addresses.Release(machineId);
    }

    /// <summary>
    /// The agent is stopping and its machines have stopped: their run files and the snapshots go (they live in
    /// memory; the next start makes them again).
    /// </summary>
    public void RemoveRunFiles()
    {
        if (Directory.Exists(runPath))
        {
            Directory.Delete(runPath, recursive: true);
        }
    }

    private string WorkDirectoryOf(Guid machineId) => Path.Combine(runPath, "vm", machineId.ToString("N"));

    private static async Task RemoveNamespaceAsync(string name)
    {
        if ((await NetworkNamespace.ListAsync(name)).Contains(name))
        {
            await NetworkNamespace.DeleteAsync(name);
        }
    }

    private sealed class RunningMicroVm(MicroVm vm, NetworkNamespace network, NetworkAttachment attachment, string bootedFrom) : IRunningMachine
    {
        public NetworkAttachment? Network => attachment;

        public string? Accelerator => vm.Accelerator;

        public string BootedFrom => bootedFrom;

        public Task<MachineExit> Exited { get; } = WatchAsync(vm);

        public Task StopAsync(CancellationToken cancellationToken) => vm.StopAsync(TimeSpan.FromSeconds(5), cancellationToken);

        public async ValueTask DisposeAsync()
        {
            await vm.DisposeAsync();
            await network.DeleteAsync();
        }

        private static async Task<MachineExit> WatchAsync(MicroVm vm)
        {
            var exit = await vm.Exited;
            return new MachineExit(exit.ExitCode, exit.Reason);
        }
    }
}
