namespace Platform.EventSourcing;

/// <summary>An event as the store holds it: its place in the global order and in its stream, and its data.</summary>
/// <param name="Data">The event record, or a <see cref="System.Text.Json.JsonElement"/> when its type name is not mapped here.</param>
public sealed record StoredEvent(
    long Position,
    string StreamId,
    long StreamVersion,
    Guid EventId,
    string EventType,
    object Data,
    EventMetadata Metadata,
    DateTimeOffset RecordedAt);
