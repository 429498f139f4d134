using Microsoft.Extensions.Hosting;

namespace Platform.EventSourcing.Subscriptions;

/// <summary>Runs every <see cref="CatchUpSubscription"/> registered in the container for the life of the host.</summary>
public sealed class SubscriptionsHostedService(IEnumerable<CatchUpSubscription> subscriptions) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(subscriptions.Select(s => Task.Run(() => s.RunAsync(stoppingToken), CancellationToken.None)));
}
