using System.Collections.Concurrent;
using Npgsql;
using Platform.EventSourcing;

namespace Platform.Provisioning.Machines;

/// <summary>
/// Wakes requests waiting on a machine (<c>/wait</c>) when its stream changes. Every instance follows the
/// store's appends on its own (LISTEN, then the events since the last it saw), so a waiter wakes within a
/// millisecond or so of the change; waiters re-read the catalog, and poll as a fallback.
/// </summary>
public sealed class MachineWatch(EventStore store, ILogger<MachineWatch> logger) : BackgroundService
{
    private static readonly TimeSpan ListenTimeout = TimeSpan.FromSeconds(5);
    private readonly ConcurrentDictionary<Guid, TaskCompletionSource> _waiters = new();

    /// <summary>A task that completes at the machine's next change (take it before reading the machine, so no change slips between).</summary>
    public Task NextChange(Guid machineId) =>
        _waiters.GetOrAdd(machineId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await FollowAsync(stoppingToken);
            }
            catch (Exception exception) when (exception is NpgsqlException or TimeoutException)
            {
                logger.LogWarning(exception, "Following machine changes failed; waiters poll until it resumes");
                WakeAll();
                await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken);
            }
        }
    }

    private async Task FollowAsync(CancellationToken cancellationToken)
    {
        await using var listener = await store.DataSource.OpenConnectionAsync(cancellationToken);
        await using (var listen = new NpgsqlCommand($"LISTEN {store.NotificationChannel}", listener))
        {
            await listen.ExecuteNonQueryAsync(cancellationToken);
        }

        try
        {
            await FollowChangesAsync(listener, cancellationToken);
        }
        finally
        {
            await SessionLease.ReleaseAllAsync(listener);
        }
    }

    private async Task FollowChangesAsync(NpgsqlConnection listener, CancellationToken cancellationToken)
    {
        var position = await store.ReadHeadPositionAsync(cancellationToken);
        WakeAll();
        while (!cancellationToken.IsCancellationRequested)
        {
            IReadOnlyList<StoredEvent> events;
            do
            {
                events = await store.ReadAllAsync(position, 1000, cancellationToken);
                foreach (var stored in events)
                {
                    if (stored.StreamId.StartsWith("machine-", StringComparison.Ordinal) && Guid.TryParse(stored.StreamId.AsSpan("machine-".Length), out var machineId))
                    {
                        Wake(machineId);
                    }

                    position = stored.Position;
                }
            }
            while (events.Count == 1000);

            await listener.WaitAsync(ListenTimeout, cancellationToken);
        }
    }

    private void Wake(Guid machineId)
    {
        if (_waiters.TryRemove(machineId, out var waiter))
        {
            waiter.TrySetResult();
        }
    }

    private void WakeAll()
    {
        foreach (var machineId in _waiters.Keys)
        {
            Wake(machineId);
        }
    }
}
