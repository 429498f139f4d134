using System.Security.Cryptography;
using System.Text;
using Platform.Contracts.Provisioning;
using Platform.Provisioning.Drivers.Cloud;

namespace Platform.HostAgent.Drivers;

/// <summary>What a cloud driver offers: its regions (the first the default), instance types, and templates (template → region → image).</summary>
public sealed record CloudCatalogue(
    IReadOnlyList<string> Regions,
    IReadOnlyList<InstanceType> InstanceTypes,
    IReadOnlyDictionary<string, Dictionary<string, string>> Images);

/// <summary>
/// Machines that are instances in a cloud (<c>aws</c>, <c>gcp</c>, <c>azure</c>): nothing of them runs on this host.
/// A launch finds the instance tagged with the machine's id and starts it, or creates one, and waits until the
/// cloud says it runs; a failed create deletes what it made. While it runs, the driver polls it, and an instance
/// stopped or deleted in the cloud's own console ends the machine. Stopping keeps the instance (and its disk);
/// cleaning up deletes it. Without credentials the driver is offered but unavailable, so placement refuses it.
/// </summary>
public sealed class CloudDriver : IMachineDriver
{
    private readonly CloudCatalogue _catalogue;
    private readonly ICloudInstances? _instances;
    private readonly string? _unavailable;
    private readonly CloudOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public CloudDriver(string name, CloudCatalogue catalogue, ICloudInstances? instances, string? unavailable, CloudOptions options, TimeProvider time, ILogger logger)
    {
        (_catalogue, _instances, _unavailable, _options, _time, _logger) = (catalogue, instances, unavailable, options, time, logger);
        // Cloud instances come with the image's disk, so a request for a disk of a given size is refused (MaxDiskMiB 0).
        Capacity = new DriverCapacity(name, "cloud",
            MaxVcpus: catalogue.InstanceTypes.Select(t => t.Vcpus).DefaultIfEmpty(0).Max(), MinMemoryMiB: 16,
            MaxMemoryMiB: catalogue.InstanceTypes.Select(t => t.MemoryMiB).DefaultIfEmpty(0).Max(), MaxDiskMiB: 0,
            catalogue.Regions, catalogue.InstanceTypes, unavailable);
        Templates = catalogue.Images.Select(image => TemplateOf(name, image.Key, image.Value)).ToList();
    }

    public DriverCapacity Capacity { get; }

    public string? Accelerator => null;

    public IReadOnlyList<TemplateOnHost> Templates { get; }

    private string Name => Capacity.Name;

    public async Task<IRunningMachine> LaunchAsync(LaunchMachine launch, CancellationToken cancellationToken)
    {
        var instances = _instances ?? throw new LaunchFailedException($"the {Name} driver can take no machine: {_unavailable}");
        var region = launch.Region ?? _catalogue.Regions.FirstOrDefault() ?? throw new LaunchFailedException($"the {Name} driver of this host offers no region");
        if (!_catalogue.Regions.Contains(region))
        {
            throw new LaunchFailedException($"the {Name} driver of this host does not offer region {region}");
        }

        if (launch.InstanceType is not { } type || _catalogue.InstanceTypes.All(t => t.Name != type))
        {
            throw new LaunchFailedException($"the {Name} driver of this host does not offer instance type {launch.InstanceType ?? "(none chosen)"}");
        }

        if (!_catalogue.Images.TryGetValue(launch.Template.Name, out var images) || !images.TryGetValue(region, out var image))
        {
            throw new LaunchFailedException($"template {launch.Template.Name} has no {Name} image in {region}");
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(_options.LaunchTimeout);
        CloudInstance? created = null;
        try
        {
            var instance = await instances.FindAsync(launch.MachineId, region, deadline.Token);
            if (instance is null)
            {
                instance = created = await instances.CreateAsync(new CloudInstanceSpec(launch.MachineId, launch.TenantId, launch.Name, region, type, image, launch.OperationId), deadline.Token);
                _logger.LogInformation("Machine {MachineId}: created {Driver} instance {InstanceId} ({InstanceType} in {Region})", launch.MachineId, Name, instance.Id, type, region);
            }
            else if (instance.State is CloudInstanceState.Stopping or CloudInstanceState.Stopped)
            {
                instance = await PollAsync(instance, s => s is not CloudInstanceState.Stopping, deadline.Token) ?? throw Gone(instance);
                await instances.StartAsync(instance, deadline.Token);
                _logger.LogInformation("Machine {MachineId}: started {Driver} instance {InstanceId}", launch.MachineId, Name, instance.Id);
            }

            var running = await PollAsync(instance, s => s is not CloudInstanceState.Pending and not CloudInstanceState.Stopped, deadline.Token) ?? throw Gone(instance);
            if (running.State != CloudInstanceState.Running)
            {
                throw new LaunchFailedException($"{Name} instance {running.Id} is {running.State.ToString().ToLowerInvariant()} instead of running{(running.StateReason is { } reason ? $": {reason}" : "")}");
            }

            return new CloudMachine(this, instances, running);
        }
        catch (Exception failed) when (failed is CloudException or HttpRequestException or LaunchFailedException
                                       || (failed is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            if (created is not null)
            {
                await DeleteQuietlyAsync(instances, created, launch.MachineId);
            }

            throw failed switch
            {
                LaunchFailedException launchFailed => launchFailed,
                OperationCanceledException => new LaunchFailedException($"the {Name} instance did not run within {_options.LaunchTimeout}"),
                HttpRequestException unreachable => new LaunchFailedException($"{Name} could not be reached: {unreachable.Message}", unreachable),
                _ => new LaunchFailedException(failed.Message, failed),
            };
        }
    }

    /// <summary>After the agent restarted: the machine's instance, if the cloud says it runs; null (then it is stopped) otherwise.</summary>
    public async Task<IRunningMachine?> AdoptAsync(LaunchMachine launch, CancellationToken cancellationToken)
    {
        if (_instances is not { } instances)
        {
            return null;
        }

        var region = launch.Region ?? _catalogue.Regions.FirstOrDefault();
        var instance = region is null ? null : await instances.FindAsync(launch.MachineId, region, cancellationToken);
        return instance is { State: CloudInstanceState.Running } ? new CloudMachine(this, instances, instance) : null;
    }

    /// <summary>After the agent restarted, for a machine it could not adopt: its instance is stopped (not deleted: it can start again).</summary>
    public async Task RemoveLeftoversAsync(Guid machineId, CancellationToken cancellationToken)
    {
        foreach (var instance in await FindEverywhereAsync(machineId, cancellationToken))
        {
            await _instances!.StopAsync(instance, cancellationToken);
        }
    }

    /// <summary>Deletes the machine's instance wherever it is, and waits until the cloud says it is gone.</summary>
    public async Task CleanUpAsync(Guid machineId, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(_options.LaunchTimeout);
        foreach (var instance in await FindEverywhereAsync(machineId, deadline.Token))
        {
            await _instances!.DeleteAsync(instance, deadline.Token);
            await PollAsync(instance, s => s is CloudInstanceState.Terminated, deadline.Token);
            _logger.LogInformation("Machine {MachineId}: deleted {Driver} instance {InstanceId}", machineId, Name, instance.Id);
        }
    }

    private async Task<IReadOnlyList<CloudInstance>> FindEverywhereAsync(Guid machineId, CancellationToken cancellationToken)
    {
        // Without credentials nothing can be found or deleted: saying so beats reporting a machine gone that is not.
        var instances = _instances ?? throw new InvalidOperationException($"the {Name} driver can reach no cloud: {_unavailable}");
        var found = new List<CloudInstance>();
        foreach (var region in _catalogue.Regions)
        {
            if (await instances.FindAsync(machineId, region, cancellationToken) is { } instance)
            {
                found.Add(instance);
            }
        }

        return found;
    }

    /// <summary>Asks for the instance every poll interval until <paramref name="done"/> holds for its state; null once it is gone.</summary>
    private async Task<CloudInstance?> PollAsync(CloudInstance instance, Func<CloudInstanceState, bool> done, CancellationToken cancellationToken)
    {
        var current = instance;
        while (!done(current.State))
        {
            await Task.Delay(_options.PollInterval, _time, cancellationToken);
            if (await _instances!.GetAsync(current, cancellationToken) is not { } now)
            {
                return done(CloudInstanceState.Terminated) ? current with { State = CloudInstanceState.Terminated } : null;
            }

            current = now;
        }

        return current;
    }

    private async Task DeleteQuietlyAsync(ICloudInstances instances, CloudInstance instance, Guid machineId)
    {
        try
        {
            using var deadline = new CancellationTokenSource(_options.LaunchTimeout);
            await instances.DeleteAsync(instance, deadline.Token);
            _logger.LogInformation("Machine {MachineId}: deleted {Driver} instance {InstanceId} after its launch failed", machineId, Name, instance.Id);
        }
        catch (Exception failed) when (failed is CloudException or HttpRequestException or OperationCanceledException)
        {
            _logger.LogError("Machine {MachineId}: could not delete {Driver} instance {InstanceId} after its launch failed ({Reason}); delete it by hand",
                machineId, Name, instance.Id, failed.Message);
        }
    }

    private LaunchFailedException Gone(CloudInstance instance) => new($"{Name} instance {instance.Id} disappeared while launching");

    /// <summary>A template's version is the hash of its images: a changed AMI is a new version.</summary>
    private static TemplateOnHost TemplateOf(string driver, string name, Dictionary<string, string> images)
    {
        var content = $"{driver}\n" + string.Concat(images.OrderBy(i => i.Key, StringComparer.Ordinal).Select(i => $"{i.Key}={i.Value}\n"));
        var sha256 = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(content)));
        return new TemplateOnHost(name, sha256[..12], "cloud", sha256, []);
    }

    /// <summary>A running instance, watched: polling that finds it stopped or gone, without being asked, ends it.</summary>
    private sealed class CloudMachine : IRunningMachine
    {
        private readonly CloudDriver _driver;
        private readonly ICloudInstances _instances;
        private readonly CloudInstance _instance;
        private readonly TaskCompletionSource<MachineExit> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly CancellationTokenSource _watching = new();
        private readonly Task _watch;
        private volatile bool _stopping;

        public CloudMachine(CloudDriver driver, ICloudInstances instances, CloudInstance instance)
        {
            (_driver, _instances, _instance) = (driver, instances, instance);
            var address = instance.PrivateAddress ?? instance.PublicAddress;
            Network = address is null ? null : new NetworkAttachment($"{driver.Name}:{instance.Location}", address, 32, "", "", instance.PublicAddress);
            _watch = WatchAsync(_watching.Token);
        }

        public NetworkAttachment? Network { get; }

        public string? Accelerator => null;

        public string BootedFrom => "cold";

        public Task<MachineExit> Exited => _exited.Task;

        public async Task StopAsync(CancellationToken cancellationToken)
        {
            _stopping = true;
            await _instances.StopAsync(_instance, cancellationToken);
            await _driver.PollAsync(_instance with { State = CloudInstanceState.Stopping }, s => s is CloudInstanceState.Stopped or CloudInstanceState.Terminated, cancellationToken);
            _exited.TrySetResult(new MachineExit(0, "stopped"));
        }

        public async ValueTask DisposeAsync()
        {
            await _watching.CancelAsync();
            try
            {
                await _watch;
            }
            catch (OperationCanceledException)
            {
            }

            _watching.Dispose();
            _exited.TrySetResult(new MachineExit(0, "stopped"));
        }

        private async Task WatchAsync(CancellationToken cancellationToken)
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                await Task.Delay(_driver._options.PollInterval, _driver._time, cancellationToken);
                CloudInstance? now;
                try
                {
                    now = await _instances.GetAsync(_instance, cancellationToken);
                }
                catch (Exception unanswered) when (unanswered is CloudException or HttpRequestException)
                {
                    // The cloud not answering one poll says nothing about the instance.
                    _driver._logger.LogWarning("Could not poll {Driver} instance {InstanceId}: {Reason}", _driver.Name, _instance.Id, unanswered.Message);
                    continue;
                }

                if (_stopping)
                {
                    return;
                }

                if (now is null or { State: CloudInstanceState.Terminating or CloudInstanceState.Terminated })
                {
                    _exited.TrySetResult(new MachineExit(null, $"{_driver.Name} instance {_instance.Id} was deleted outside Platform"));
                    return;
                }

                if (now.State is CloudInstanceState.Stopping or CloudInstanceState.Stopped)
                {
                    _exited.TrySetResult(new MachineExit(0, $"{_driver.Name} instance {_instance.Id} was stopped outside Platform"));
                    return;
                }
            }
        }
    }
}
