using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Platform.Hosting;

/// <summary>
/// Work a service does every <see cref="Interval"/> while it runs, the first round at once: a sweep of what is due. A round
/// that fails is logged and the next one goes on; stopping ends it between rounds.
/// </summary>
public abstract class PeriodicWork(TimeProvider time, ILogger logger) : BackgroundService
{
    protected TimeProvider Time { get; } = time;

    protected ILogger Logger { get; } = logger;

    protected abstract TimeSpan Interval { get; }

    /// <summary>What a round does, for the log when it fails ("sweep overdue machine steps").</summary>
    protected abstract string What { get; }

    protected abstract Task RunOnceAsync(CancellationToken cancellationToken);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, Time);
        do
        {
            try
            {
                await RunOnceAsync(stoppingToken);
            }
            catch (Exception exception) when (!stoppingToken.IsCancellationRequested)
            {
                Logger.LogWarning(exception, "Could not {What}; trying again in {Interval}", What, Interval);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}
