using System.Collections.Concurrent;
using Platform.EventSourcing.Subscriptions;

namespace Platform.EventSourcing.Tests;

/// <summary>A subscriber that remembers what it was handed, in order.</summary>
internal sealed class Collector(string name = "collector") : IEventSubscriber
{
    private readonly ConcurrentQueue<StoredEvent> _events = new();

    public string Name { get; } = name;

    public IReadOnlyList<StoredEvent> Events => _events.ToArray();

    public int Count => _events.Count;

    public Task HandleAsync(IReadOnlyList<StoredEvent> events, CancellationToken cancellationToken)
    {
        foreach (var @event in events)
        {
            _events.Enqueue(@event);
        }

        return Task.CompletedTask;
    }
}
