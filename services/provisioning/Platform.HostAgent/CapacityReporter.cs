using System.Text.Json;
using MassTransit;
using Platform.Contracts;
using Platform.Contracts.Provisioning;

namespace Platform.HostAgent;

/// <summary>
/// Cleans up after a previous run, then reports what this host offers: at start, as soon as it changes (the
/// accelerator found, a snapshot made), when provisioning starts (<see cref="ReportNow"/>), and every
/// <see cref="AgentOptions.ReportInterval"/> in any case.
/// </summary>
public sealed class CapacityReporter(HostMachines machines, HostIdentity host, AgentOptions options, Guests.DataPlane dataPlane, IBus bus, TimeProvider time, ILogger<CapacityReporter> logger) : BackgroundService
{
    private static readonly TimeSpan ChangeCheckInterval = TimeSpan.FromSeconds(1);
    private readonly SemaphoreSlim _wake = new(0);

    /// <summary>Report at once (provisioning started and may have missed the last report).</summary>
    public void ReportNow() => _wake.Release();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await machines.ReconcileAsync(stoppingToken);
        await machines.ReconcileNetworksAsync();
        logger.LogInformation("Host {HostName} ({HostId}) offers {Drivers}", host.Name, host.HostId, string.Join(", ", machines.Drivers.Select(d => d.Capacity.Name)));
        string? lastOffer = null;
        var lastReported = DateTimeOffset.MinValue;
        var asked = true;
        while (!stoppingToken.IsCancellationRequested)
        {
            var report = Current();
            var offer = JsonSerializer.Serialize(report with { ReportedAt = default }, PlatformJson.Options);
            if (asked || offer != lastOffer || report.ReportedAt - lastReported >= options.ReportInterval)
            {
                await bus.Publish(report, stoppingToken);
                if (offer != lastOffer)
                {
                    logger.LogInformation("Host {HostName} reports accelerator {Accelerator}, templates {Templates}", host.Name, report.Accelerator,
                        string.Join(", ", report.Templates.Select(t => $"{t.Name}@{t.Version} ({t.Snapshots.Count} snapshot shapes)")));
                }

                (lastOffer, lastReported) = (offer, report.ReportedAt);
            }

            asked = await _wake.WaitAsync(ChangeCheckInterval, stoppingToken);
        }
    }

    /// <summary>
    /// Machines outlive the agent: it leaves them running, and its next start adopts them. Only when the operator asked for
    /// it (<see cref="AgentOptions.RemoveMachinesOnStopFile"/>, written by <c>./platform down --machines</c>) does it stop and
    /// remove them first.
    /// </summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        var removeMachines = Path.Combine(options.StatePath, AgentOptions.RemoveMachinesOnStopFile);
        if (File.Exists(removeMachines))
        {
            logger.LogInformation("Stopping and removing every machine of this host, as {File} asks", removeMachines);
            await machines.RemoveAllAsync();
            File.Delete(removeMachines);
        }
    }

    private HostCapacityReported Current() => new(
        host.HostId, host.Name, host.Vcpus, host.MemoryMiB, host.DiskMiB,
        machines.Drivers.Select(d => d.Accelerator).FirstOrDefault(a => a is not null) ?? "none",
        machines.Drivers.Select(d => d.Capacity).ToList(),
        machines.Drivers.SelectMany(d => d.Templates).DistinctBy(t => (t.Name, t.Version)).ToList(),
        time.GetUtcNow(),
        dataPlane.Url);
}
