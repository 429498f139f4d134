using Platform.EventSourcing.Subscriptions;

namespace Platform.EventSourcing;

public sealed class EventStoreOptions
{
    /// <summary>The service's PostgreSQL schema: its events, checkpoints and read models live there.</summary>
    public required string Schema { get; init; }

    public EventTypeRegistry Types { get; init; } = new();

    /// <summary>
    /// Projections applied in the appending transaction: their tables change atomically with the events. They run after
    /// the streams' versions are checked and before the global position is taken, alongside other appends' projections,
    /// so they see each event without its position (0) and lock only rows of the streams appended to, or others in a
    /// stable order.
    /// </summary>
    public IReadOnlyList<IProjection> InlineProjections { get; init; } = [];

    /// <summary>
    /// How many <see cref="EventStore.AppendAsync"/> calls of this process hold a connection at once. Every append waits for
    /// the global position row in turn; beyond a few at once, more would only wait in PostgreSQL, each holding a pooled
    /// connection that readers then lack. The rest wait in process, holding none.
    /// </summary>
    public int MaxConcurrentAppends { get; init; } = 8;
}
