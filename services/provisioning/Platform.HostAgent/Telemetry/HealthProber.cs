using MassTransit;
using Platform.Contracts.Telemetry;
using Platform.HostAgent.Drivers;

namespace Platform.HostAgent.Telemetry;

/// <summary>
/// Runs each running machine's checks (<see cref="MachineChecks"/>) from the moment it runs until it stops, and reports
/// a check's result as <see cref="MachineHealthReported"/> when it changes and after every failure (so telemetry always
/// knows how many times in a row it failed). Telemetry decides what the results mean for the machine.
/// </summary>
public sealed class HealthProber(HostMachines machines, HostIdentity host, AgentOptions options, IBus bus, TimeProvider time, ILogger<HealthProber> logger) : BackgroundService
{
    private static readonly TimeSpan WatchInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LongestAttempt = TimeSpan.FromSeconds(5);
    private readonly Dictionary<IRunningMachine, CancellationTokenSource> _watched = [];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var running = machines.RunningMachines;
                foreach (var (launch, machine) in running)
                {
                    if (_watched.ContainsKey(machine) || machine is not IProbedMachine probed)
                    {
                        continue;
                    }

                    var checks = MachineChecks.For(launch, probed, options.HeartbeatInterval);
                    var watch = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                    _watched[machine] = watch;
                    foreach (var check in checks)
                    {
                        _ = RunAsync(launch.MachineId, launch.TenantId, check, watch.Token);
                    }
                }

                foreach (var gone in _watched.Keys.Except(running.Select(r => r.Machine)).ToList())
                {
                    await _watched[gone].CancelAsync();
                    _watched[gone].Dispose();
                    _watched.Remove(gone);
                }

                await Task.Delay(WatchInterval, time, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The agent is stopping.
        }
    }

    /// <summary>One check of one machine, until the machine stops running.</summary>
    private async Task RunAsync(Guid machineId, Guid tenantId, MachineCheck check, CancellationToken stopped)
    {
        bool? lastHealthy = null;
        var failures = 0;
        try
        {
            while (true)
            {
                // The first check waits an interval too: a machine's service is given that long to come up.
                await Task.Delay(check.Interval, time, stopped);
                var detail = await AttemptAsync(check, stopped);
                failures = detail is null ? 0 : failures + 1;
                if (detail is null && lastHealthy == true)
                {
                    continue;
                }

                try
                {
                    await bus.Publish(new MachineHealthReported(machineId, tenantId, host.HostId, check.Name, detail is null, detail, time.GetUtcNow(), failures), stopped);
                    lastHealthy = detail is null;
                }
                catch (Exception exception) when (!stopped.IsCancellationRequested)
                {
                    // Reported again at the next run: a failure always is, a pass because nothing was reported since.
                    logger.LogWarning(exception, "Check {Check} of machine {MachineId} not reported", check.Name, machineId);
                    lastHealthy = null;
                }
            }
        }
        catch (OperationCanceledException) when (stopped.IsCancellationRequested)
        {
            // The machine stopped running (or the agent is stopping).
        }
    }

    private static async Task<string?> AttemptAsync(MachineCheck check, CancellationToken stopped)
    {
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(stopped);
        var timeout = check.Interval < LongestAttempt ? check.Interval : LongestAttempt;
        attempt.CancelAfter(timeout);
        try
        {
            return await check.RunAsync(attempt.Token);
        }
        catch (OperationCanceledException) when (!stopped.IsCancellationRequested)
        {
            return $"no answer within {timeout.TotalSeconds:0.#} s";
        }
        catch (Exception exception) when (!stopped.IsCancellationRequested && exception is not OperationCanceledException)
        {
            return exception.Message;
        }
    }
}
