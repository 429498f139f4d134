using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;

namespace Platform.Messaging;

/// <summary>
/// Ends the service when one of its receive endpoints has lost its consumer for good, so that its supervisor starts it
/// afresh. MassTransit 8.4 (the newest obtainable here) reconnects after a lost broker connection, except when the
/// connection dies while a message is in flight and its acknowledgement fails: then an endpoint can stay without a
/// consumer (MassTransit issues #2072, #5692) while the bus reports itself healthy, and the service silently stops
/// handling that queue — seen here when the broker dropped every connection under load. So the watchdog asks the
/// broker itself: every few seconds it declares each of its endpoints' queues passively, and a queue with no consumer
/// past <see cref="Patience"/> ends the service with <see cref="RestartExitCode"/>, which <c>./platform</c> (and the
/// tests' stacks) answer by starting it again. Messages wait in their durable queues meanwhile: nothing is lost.
/// </summary>
public sealed class BusWatchdog(IBusControl bus, RabbitMqAddress broker, IHostApplicationLifetime lifetime, ILogger<BusWatchdog> logger, TimeProvider time) : BackgroundService
{
    /// <summary>EX_TEMPFAIL: the service ended to be started again.</summary>
    public const int RestartExitCode = 75;

    private static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(3);

    /// <summary>Longer than a reconnect takes when it works (a few seconds with MassTransit's retry policy).</summary>
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private readonly Dictionary<string, DateTimeOffset> _withoutConsumerSince = [];
    private IConnection? _connection;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(CheckInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                if (await StuckQueueAsync(stoppingToken) is { } stuck)
                {
                    logger.LogCritical("Queue {Queue} has had no consumer for {Seconds:0} s although this service consumes it: the bus lost it and does not recover; ending the service to be started again",
                        stuck, Patience.TotalSeconds);
                    Environment.ExitCode = RestartExitCode;
                    lifetime.StopApplication();
                    // The host's own shutdown may wait on the stuck endpoint: past its timeout, end regardless.
                    await Task.Delay(TimeSpan.FromSeconds(45), CancellationToken.None);
                    Environment.Exit(RestartExitCode);
                }
            }
            catch (Exception exception) when (!stoppingToken.IsCancellationRequested)
            {
                // The broker is away: that is the bus's to recover from, and the next check's to judge (on a new connection).
                _withoutConsumerSince.Clear();
                await DropConnectionAsync();
                logger.LogDebug(exception, "Could not check the receive endpoints' queues");
            }
        }
    }

    private async Task<string?> StuckQueueAsync(CancellationToken cancellationToken)
    {
        var health = bus.CheckHealth();
        var queues = health.Endpoints.Keys.Select(QueueOf).OfType<string>().ToList();
        if (queues.Count == 0)
        {
            return null;
        }

        if (_connection is not { IsOpen: true })
        {
            await DropConnectionAsync();
            _connection = await broker.ConnectAsync("watchdog", cancellationToken);
        }

        var now = time.GetUtcNow();
        foreach (var queue in queues)
        {
            await using var channel = await _connection.CreateChannelAsync(cancellationToken: cancellationToken);
            uint consumers;
            try
            {
                consumers = (await channel.QueueDeclarePassiveAsync(queue, cancellationToken)).ConsumerCount;
            }
            catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
            {
                // Not declared (yet): nothing to judge.
                continue;
            }

            if (consumers > 0)
            {
                _withoutConsumerSince.Remove(queue);
                continue;
            }

            var since = _withoutConsumerSince.TryGetValue(queue, out var first) ? first : _withoutConsumerSince[queue] = now;
            if (now - since >= Patience)
            {
                return queue;
            }
        }

        return null;
    }

    private async Task DropConnectionAsync()
    {
        if (_connection is { } connection)
        {
            _connection = null;
            await connection.DisposeAsync();
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        await DropConnectionAsync();
    }

    /// <summary>The queue of an endpoint's input address (<c>rabbitmq://host/vhost/queue?…</c>); null for what is not a queue of ours.</summary>
    private static string? QueueOf(string inputAddress) =>
        Uri.TryCreate(inputAddress, UriKind.Absolute, out var uri) && uri.Segments.Length > 0 && uri.Query.Length == 0
            ? Uri.UnescapeDataString(uri.Segments[^1].TrimEnd('/'))
            : null;
}
