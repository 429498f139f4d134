namespace Platform.EventSourcing.Subscriptions;

/// <summary>
/// Reacts to events with side effects outside the store (publishing, calling out). The checkpoint moves
/// only after <see cref="HandleAsync"/> succeeds: delivery is at-least-once, so the effect must tolerate repeats.
/// </summary>
public interface IEventSubscriber
{
    /// <summary>Stable name; also the checkpoint's name.</summary>
    string Name { get; }

    Task HandleAsync(IReadOnlyList<StoredEvent> events, CancellationToken cancellationToken);
}
