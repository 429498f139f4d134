using MassTransit;
using Platform.Contracts.Provisioning;

namespace Platform.HostAgent;

/// <summary>
/// Cleans up after a previous run, then reports what this host offers, at start and every
/// <see cref="AgentOptions.ReportInterval"/> (so a provisioning service that started later still learns of it).
/// At shutdown, stops the machines it runs.
/// </summary>
public sealed class CapacityReporter(HostMachines machines, HostIdentity host, AgentOptions options, IBus bus, TimeProvider time, ILogger<CapacityReporter> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await machines.ReconcileAsync(stoppingToken);
        var accelerator = machines.Drivers.Select(d => d.Accelerator).FirstOrDefault(a => a is not null) ?? "none";
        logger.LogInformation("Host {HostName} ({HostId}) offers {Drivers}; accelerator {Accelerator}", host.Name, host.HostId,
            string.Join(", ", machines.Drivers.Select(d => d.Capacity.Name)), accelerator);
        while (!stoppingToken.IsCancellationRequested)
        {
            await bus.Publish(new HostCapacityReported(host.HostId, host.Name, host.Vcpus, host.MemoryMiB, host.DiskMiB, accelerator,
                machines.Drivers.Select(d => d.Capacity).ToList(), machines.Drivers.SelectMany(d => d.Templates).DistinctBy(t => (t.Name, t.Version)).ToList(),
                time.GetUtcNow()), stoppingToken);
            await Task.Delay(options.ReportInterval, stoppingToken);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        await machines.StopAllAsync();
    }
}
