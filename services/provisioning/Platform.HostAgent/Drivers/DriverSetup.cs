using Platform.Contracts.Provisioning;
using Platform.HostAgent.Networking;
using Platform.Provisioning.Drivers.Container;
using Platform.Provisioning.Drivers.MicroVm;
using Platform.Provisioning.Drivers.Sandbox;
using Platform.Provisioning.Drivers.Templates;

namespace Platform.HostAgent.Drivers;

/// <summary>Makes the drivers this host is configured to offer, from what it has installed and built.</summary>
public static class DriverSetup
{
    public const string Qemu = "/usr/bin/qemu-system-x86_64";

    /// <summary>How long the container engine has to answer its first ping and image list while the agent starts.</summary>
    public static readonly TimeSpan ContainerEngineTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Where, under the run path, cold-booted guests' memory files live.</summary>
    public const string MemoryDirectoryName = "memory";

    public static IReadOnlyList<IMachineDriver> Create(AgentOptions options, TenantNetworks networks, LocalAddresses addresses, HostSnapshots snapshots, TemplateShelf templates, ILoggerFactory loggers)
    {
        var logger = loggers.CreateLogger(typeof(DriverSetup));
        var drivers = new List<IMachineDriver>();
        if (options.OfferedDrivers.Contains("microvm"))
        {
            if (!File.Exists(Qemu))
            {
                logger.LogError("The microvm driver needs {Qemu} (Debian package qemu-system-x86); this host offers no micro-VMs", Qemu);
            }
            else
            {
                var runner = new MicroVmRunner(Path.Combine(options.TemplatesPath, ".accelerator"), Qemu, Path.Combine(options.MicroVmRunPath, MemoryDirectoryName));
                drivers.Add(new MicroVmDriver(runner, templates, options.SnapshotShapes, options.SnapshotPoolSize, addresses, networks, options.MicroVmRunPath,
                    Path.Combine(options.StatePath, "microvm-paused"), Path.Combine(options.StatePath, "disks"), snapshots, loggers.CreateLogger<MicroVmDriver>()));
            }
        }

        if (options.OfferedDrivers.Contains("sandbox"))
        {
            drivers.Add(new SandboxDriver(new SandboxRunner(Cgroups.Detect(), Path.Combine(options.StatePath, "sandboxes")), options.SandboxMaxProcesses, networks, snapshots,
                () => templates.Images));
        }

        if (options.OfferedDrivers.Contains(ContainerDriver.Kind) && ContainerDriverFor(options.Container, snapshots, loggers) is { } containers)
        {
            drivers.Add(containers);
        }

        if (options.OfferedDrivers.Contains("aws"))
        {
            drivers.Add(CloudDrivers.Aws(options.Aws, loggers));
        }

        if (options.OfferedDrivers.Contains("gcp"))
        {
            drivers.Add(CloudDrivers.Gcp(options.Gcp, loggers));
        }

        if (options.OfferedDrivers.Contains("azure"))
        {
            drivers.Add(CloudDrivers.Azure(options.Azure, loggers));
        }

        if (options.OfferedDrivers.Contains("simulated"))
        {
            drivers.Add(new SimulatedDriver(options.Simulated, drivers.SelectMany(d => d.Templates).ToList()));
        }

        return drivers;
    }

    /// <summary>
    /// The container driver when its engine answers at the configured socket, with the images it holds read once, so
    /// that the first capacity report offers them; null, after saying why, when it does not.
    /// </summary>
    private static ContainerDriver? ContainerDriverFor(ContainerOptions options, HostSnapshots snapshots, ILoggerFactory loggers)
    {
        var docker = new ContainerEngine(options.Socket);
        try
        {
            using var timeout = new CancellationTokenSource(ContainerEngineTimeout);
            // Drivers are made once, while the agent starts and before it serves anything: blocking here holds up nothing.
            docker.PingAsync(timeout.Token).GetAwaiter().GetResult();
            // Unset, podman remaps users per container; "" leaves the engine's own default.
            options.UserNamespace = options.UserNamespace switch
            {
                null => docker.IsPodmanAsync(timeout.Token).GetAwaiter().GetResult() ? "auto" : null,
                "" => null,
                var mode => mode,
            };
            var limitsWritableLayer = docker.LimitsWritableLayerAsync(timeout.Token).GetAwaiter().GetResult();
            if (!limitsWritableLayer)
            {
                loggers.CreateLogger(typeof(DriverSetup)).LogInformation(
                    "The container engine at {Socket} cannot limit a container's writable layer (overlay on ext4?): containers get no disk size (diskMiB) on this host", options.Socket);
            }

            var driver = new ContainerDriver(docker, options, snapshots, loggers.CreateLogger<ContainerDriver>(), limitsWritableLayer);
            driver.RefreshTemplatesAsync(timeout.Token).GetAwaiter().GetResult();
            return driver;
        }
        catch (Exception exception) when (exception is ContainerEngineException or OperationCanceledException)
        {
            loggers.CreateLogger(typeof(DriverSetup)).LogError(
                "The container driver needs a Docker Engine API at {Socket} (podman system service, or dockerd), set by Platform:Agent:Container:Socket: {Reason}; this host offers no containers",
                options.Socket, exception.Message);
            docker.Dispose();
            return null;
        }
    }
}

/// <summary>
/// Makes the micro-VM snapshots in the background once the agent runs and keeps their pools filled; when it stops,
/// removes the pools and the snapshots.
/// </summary>
public sealed class MicroVmPreparation(IEnumerable<IMachineDriver> drivers) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var microvms = drivers.OfType<MicroVmDriver>().ToList();
        foreach (var microvm in microvms)
        {
            await microvm.PrepareAsync(stoppingToken);
        }

        await Task.WhenAll(microvms.Select(m => m.KeepPoolsFilledAsync(stoppingToken)));
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        foreach (var microvm in drivers.OfType<MicroVmDriver>())
        {
            await microvm.ShutDownAsync();
        }
    }
}

/// <summary>Keeps the container driver's templates (the engine's images) current while the agent runs.</summary>
public sealed class ContainerImageWatch(IEnumerable<IMachineDriver> drivers) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await Task.WhenAll(drivers.OfType<ContainerDriver>().Select(d => d.KeepTemplatesCurrentAsync(stoppingToken)));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
