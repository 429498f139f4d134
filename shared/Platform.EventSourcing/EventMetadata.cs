namespace Platform.EventSourcing;

/// <summary>Who caused an event and in which flow; stored beside every event, never inside its data.</summary>
public sealed record EventMetadata(
    Guid? CorrelationId = null,
    Guid? CausationId = null,
    string? TenantId = null,
    string? Actor = null)
{
    public static EventMetadata None { get; } = new();
}
