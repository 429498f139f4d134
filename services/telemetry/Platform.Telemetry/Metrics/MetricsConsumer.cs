using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts.Telemetry;

namespace Platform.Telemetry.Metrics;

/// <summary>Records each host agent's metrics report as raw samples (idempotent: a redelivered report is recorded once).</summary>
public sealed class MetricsConsumer(MetricStore metrics) : IConsumer<MachineMetricsReported>
{
    public Task Consume(ConsumeContext<MachineMetricsReported> context) => metrics.RecordAsync(context.Message, context.CancellationToken);
}

/// <summary>Every <see cref="MetricsOptions.RollupInterval"/>: folds new samples into the 1-minute and 1-hour series and deletes expired rows.</summary>
public sealed class MetricsRollup(MetricStore metrics, IOptions<MetricsOptions> options, TimeProvider time, ILogger<MetricsRollup> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.RollupInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await metrics.RollUpAndExpireAsync(time.GetUtcNow(), options.Value, stoppingToken);
            }
            catch (Exception exception) when (exception is NpgsqlException or TimeoutException)
            {
                logger.LogWarning(exception, "Metrics rollup failed; trying again in {Interval}", options.Value.RollupInterval);
            }
        }
    }
}
