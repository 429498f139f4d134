using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Platform.EventSourcing.Subscriptions;

/// <summary>
/// Feeds every event of a store, in global order from a durable checkpoint, to one projection or subscriber.
/// Woken by LISTEN/NOTIFY, polling as a fallback. Across service instances one holds the subscription's
/// lease (a session advisory lock) and runs it; the others take over when its connection dies.
/// </summary>
public sealed class CatchUpSubscription
{
    private readonly EventStore _store;
    private readonly Func<CancellationToken, Task<int>> _processBatch;
    private readonly SubscriptionOptions _options;
    private readonly ILogger _logger;
    private long _position;

    private CatchUpSubscription(EventStore store, string name, SubscriptionOptions? options, ILogger? logger, Func<CatchUpSubscription, Func<CancellationToken, Task<int>>> processBatch)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        _store = store;
        Name = name;
        _options = options ?? new SubscriptionOptions();
        _logger = logger ?? NullLogger.Instance;
        _processBatch = processBatch(this);
    }

    public string Name { get; }

    /// <summary>The position of the last event this instance handled.</summary>
    public long Position => Interlocked.Read(ref _position);

    public static CatchUpSubscription ForProjection(EventStore store, IProjection projection, SubscriptionOptions? options = null, ILogger? logger = null) =>
        new(store, projection.Name, options, logger, self => ct => self.ProjectBatchAsync(projection, ct));

    public static CatchUpSubscription ForSubscriber(EventStore store, IEventSubscriber subscriber, SubscriptionOptions? options = null, ILogger? logger = null) =>
        new(store, subscriber.Name, options, logger, self => ct => self.DeliverBatchAsync(subscriber, ct));

    /// <summary>Empties a projection and moves its checkpoint to 0 in one transaction; a running subscription rebuilds it from there.</summary>
    public static async Task ResetAsync(EventStore store, IProjection projection, CancellationToken cancellationToken = default)
    {
        await using var connection = await store.DataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await Checkpoints.LockAsync(connection, transaction, store.Schema, projection.Name, cancellationToken);
        await projection.ResetAsync(transaction, cancellationToken);
        await Checkpoints.SaveAsync(connection, transaction, store.Schema, projection.Name, 0, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>Handles batches until none is left; returns the position reached. Takes no lease: for rebuilds, tools and tests.</summary>
    public async Task<long> CatchUpAsync(CancellationToken cancellationToken = default)
    {
        while (await _processBatch(cancellationToken) > 0)
        {
        }

        return Position;
    }

    /// <summary>Runs until cancelled, surviving lost connections and failing handlers with capped backoff.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var failures = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await RunWithLeaseAsync(() => failures = 0, cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception exception)
            {
                failures++;
                var delay = TimeSpan.FromMilliseconds(Math.Min(_options.MaxRetryDelay.TotalMilliseconds, 100 * Math.Pow(2, Math.Min(failures, 16))));
                _logger.LogWarning("Subscription {Subscription} in {Schema} failed at position {Position} ({Error}: {Message}); retrying in {Delay} ms",
                    Name, _store.Schema, Position, exception.GetType().Name, exception.Message, (int)delay.TotalMilliseconds);
                try
                {
                    await Task.Delay(delay, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private async Task RunWithLeaseAsync(Action progressed, CancellationToken cancellationToken)
    {
        await using var listener = await _store.DataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            while (!await TryTakeLeaseAsync(listener, cancellationToken))
            {
                await Task.Delay(_options.LeaseRetryInterval, cancellationToken);
            }

            await using (var listen = new NpgsqlCommand($"LISTEN {_store.NotificationChannel}", listener))
            {
                await listen.ExecuteNonQueryAsync(cancellationToken);
            }

            _logger.LogInformation("Subscription {Subscription} in {Schema} running", Name, _store.Schema);
            while (!cancellationToken.IsCancellationRequested)
            {
                var handled = await _processBatch(cancellationToken);
                progressed();
                if (handled == 0)
                {
                    await listener.WaitAsync(_options.PollInterval, cancellationToken);
                }
            }
        }
        finally
        {
            await SessionLease.ReleaseAllAsync(listener);
        }
    }

    private Task<bool> TryTakeLeaseAsync(NpgsqlConnection connection, CancellationToken cancellationToken) =>
        SessionLease.TryTakeAsync(connection, $"platform-subscription:{_store.Schema}:{Name}", cancellationToken);

    private async Task<int> ProjectBatchAsync(IProjection projection, CancellationToken cancellationToken)
    {
        await using var connection = await _store.DataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var checkpoint = await Checkpoints.LockAsync(connection, transaction, _store.Schema, Name, cancellationToken);
        var events = await _store.ReadAllAsync(connection, transaction, checkpoint, _options.BatchSize, cancellationToken);
        if (events.Count > 0)
        {
            await projection.ApplyAsync(events, transaction, cancellationToken);
            await Checkpoints.SaveAsync(connection, transaction, _store.Schema, Name, events[^1].Position, cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        Interlocked.Exchange(ref _position, events.Count > 0 ? events[^1].Position : checkpoint);
        return events.Count;
    }

    private async Task<int> DeliverBatchAsync(IEventSubscriber subscriber, CancellationToken cancellationToken)
    {
        await using var connection = await _store.DataSource.OpenConnectionAsync(cancellationToken);
        var checkpoint = await Checkpoints.ReadAsync(connection, _store.Schema, Name, cancellationToken);
        var events = await _store.ReadAllAsync(connection, null, checkpoint, _options.BatchSize, cancellationToken);
        if (events.Count > 0)
        {
            await subscriber.HandleAsync(events, cancellationToken);
            await Checkpoints.SaveAsync(connection, null, _store.Schema, Name, events[^1].Position, cancellationToken);
        }

        Interlocked.Exchange(ref _position, events.Count > 0 ? events[^1].Position : checkpoint);
        return events.Count;
    }
}
