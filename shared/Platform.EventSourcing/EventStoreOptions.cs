using Platform.EventSourcing.Subscriptions;

namespace Platform.EventSourcing;

public sealed class EventStoreOptions
{
    /// <summary>The service's PostgreSQL schema: its events, checkpoints and read models live there.</summary>
    public required string Schema { get; init; }

    public EventTypeRegistry Types { get; init; } = new();

    /// <summary>Projections applied in the appending transaction: their tables change atomically with the events.</summary>
    public IReadOnlyList<IProjection> InlineProjections { get; init; } = [];
}
