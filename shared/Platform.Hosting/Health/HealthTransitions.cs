using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;

namespace Platform.Hosting.Health;

/// <summary>
/// Checks every dependency every few seconds and logs only changes: one warning line when a dependency
/// goes away (naming it and why), one line when it is back. Probes of <c>/health/ready</c> and the bus's
/// reconnect attempts stay out of the logs, so an outage never becomes a loop of lines or stack traces.
/// </summary>
internal sealed class HealthTransitions(ILogger<HealthTransitions> logger) : IHealthCheckPublisher
{
    private readonly Dictionary<string, HealthStatus> _last = [];

    public Task PublishAsync(HealthReport report, CancellationToken cancellationToken)
    {
        lock (_last)
        {
            foreach (var (name, entry) in report.Entries)
            {
                var known = _last.TryGetValue(name, out var previous);
                _last[name] = entry.Status;
                if (known && previous == entry.Status)
                {
                    continue;
                }

                if (entry.Status == HealthStatus.Healthy)
                {
                    if (known)
                    {
                        logger.LogInformation("{Check} is healthy again: {Description}", name, entry.Description);
                    }
                }
                else
                {
                    logger.LogWarning("{Check} is {Status}: {Description}", name, entry.Status.ToString().ToLowerInvariant(), entry.Description);
                }
            }
        }

        return Task.CompletedTask;
    }
}
