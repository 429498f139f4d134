namespace Platform.EventSourcing;

/// <summary>
/// Who caused an event and in which flow; stored beside every event, never inside its data. <paramref name="TraceParent"/>
/// is the W3C trace context of the activity that appended it (the store fills it in), so that what the event causes
/// elsewhere continues the same trace.
/// </summary>
public sealed record EventMetadata(
    Guid? CorrelationId = null,
    Guid? CausationId = null,
    string? TenantId = null,
    string? Actor = null,
    string? TraceParent = null)
{
    public static EventMetadata None { get; } = new();

    /// <summary>This metadata with the current activity's trace context, unless it names one already or there is none.</summary>
    public EventMetadata WithCurrentTrace() =>
        TraceParent is null && System.Diagnostics.Activity.Current is { IdFormat: System.Diagnostics.ActivityIdFormat.W3C } current
            ? this with { TraceParent = current.Id }
            : this;
}
