using System.Diagnostics;
using MassTransit;
using Platform.Contracts.Provisioning;
using Platform.Contracts.Telemetry;
using Platform.HostAgent.Drivers;

namespace Platform.HostAgent.Telemetry;

/// <summary>
/// Every <see cref="AgentOptions.MetricsInterval"/>, samples each running machine its driver can measure and the host,
/// and publishes them as one <see cref="MachineMetricsReported"/>. Counters become rates over the interval, so a
/// machine is reported from its second sample on (its first is the baseline). With each machine goes how many commands run
/// through the API still run in it: provisioning counts them as work when it judges idleness.
/// </summary>
public sealed class MetricsReporter(HostMachines machines, Guests.GuestProcesses processes, HostIdentity host, AgentOptions options, IBus bus, TimeProvider time, ILogger<MetricsReporter> logger) : BackgroundService
{
    private readonly Dictionary<Guid, Baseline> _baselines = [];
    private readonly HostUsage _host = new();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.MetricsInterval, time);
        Sample();
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await bus.Publish(Sample(), stoppingToken);
            }
            catch (Exception exception) when (!stoppingToken.IsCancellationRequested)
            {
                // A sample lost is a gap in a graph; it must not stop the agent.
                logger.LogWarning(exception, "Metrics of host {HostId} not reported", host.HostId);
            }
        }
    }

    private MachineMetricsReported Sample()
    {
        var now = Stopwatch.GetTimestamp();
        var running = machines.RunningMachines;
        var samples = new List<MachineSample>();
        foreach (var (launch, machine) in running)
        {
            if (machine is not ISampledMachine sampled || sampled.Sample() is not { } usage)
            {
                continue;
            }

            if (_baselines.GetValueOrDefault(launch.MachineId) is { } baseline && ReferenceEquals(baseline.Machine, machine))
            {
                samples.Add(Rate(launch, baseline, usage, Stopwatch.GetElapsedTime(baseline.Timestamp, now)) with
                {
                    RunningCommands = processes.Of(launch.MachineId).Count(p => p.EndedAt is null),
                });
            }

            _baselines[launch.MachineId] = new Baseline(machine, usage, now);
        }

        foreach (var gone in _baselines.Keys.Except(running.Select(r => r.Launch.MachineId)).ToList())
        {
            _baselines.Remove(gone);
        }

        var (cpuCores, memoryBytes, memoryTotalBytes) = _host.Read();
        return new MachineMetricsReported(host.HostId, time.GetUtcNow(), options.MetricsInterval.TotalSeconds, samples,
            new HostSample(Math.Round(cpuCores, 4), host.Vcpus, memoryBytes, memoryTotalBytes, running.Count));
    }

    private static MachineSample Rate(LaunchMachine launch, Baseline baseline, MachineUsage usage, TimeSpan elapsed) => new(
        launch.MachineId, launch.TenantId, launch.Driver,
        Math.Round(Math.Max(0, usage.CpuNanoseconds - baseline.Usage.CpuNanoseconds) / Math.Max(1, elapsed.TotalNanoseconds), 4),
        usage.MemoryBytes, usage.MemoryLimitBytes, usage.Processes, usage.DiskBytes,
        Math.Max(0, usage.NetworkRxBytes - baseline.Usage.NetworkRxBytes), Math.Max(0, usage.NetworkTxBytes - baseline.Usage.NetworkTxBytes));

    /// <summary>A machine's counters at its previous sample; a machine started again is a new <see cref="IRunningMachine"/> and starts a new baseline.</summary>
    private sealed record Baseline(IRunningMachine Machine, MachineUsage Usage, long Timestamp);
}
