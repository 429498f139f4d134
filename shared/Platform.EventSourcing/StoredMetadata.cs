using JasperFx.Events;

namespace Platform.EventSourcing;

/// <summary>
/// Where <see cref="EventMetadata"/> lives in Marten's event row: in its <c>headers</c>, by the names it has in JSON. Marten's
/// own correlation and causation columns stay off: Marten fills them from the session and the current activity, and the
/// platform's metadata is what the writer says, nothing else.
/// </summary>
internal static class StoredMetadata
{
    public const string CorrelationId = "correlationId";
    public const string CausationId = "causationId";
    public const string TenantId = "tenantId";
    public const string Actor = "actor";
    public const string TraceParent = "traceParent";

    public static void Write(EventMetadata metadata, IEvent @event)
    {
        Set(CorrelationId, metadata.CorrelationId?.ToString());
        Set(CausationId, metadata.CausationId?.ToString());
        Set(TenantId, metadata.TenantId);
        Set(Actor, metadata.Actor);
        Set(TraceParent, metadata.TraceParent);

        void Set(string name, string? value)
        {
            if (value is not null)
            {
                @event.SetHeader(name, value);
            }
        }
    }

    public static EventMetadata Read(string? headersJson)
    {
        if (headersJson is null)
        {
            return EventMetadata.None;
        }

        using var headers = System.Text.Json.JsonDocument.Parse(headersJson);
        var root = headers.RootElement;
        if (root.ValueKind != System.Text.Json.JsonValueKind.Object)
        {
            return EventMetadata.None;
        }

        return new EventMetadata(Guid(CorrelationId), Guid(CausationId), Text(TenantId), Text(Actor), Text(TraceParent));

        string? Text(string name) =>
            root.TryGetProperty(name, out var value) && value.ValueKind == System.Text.Json.JsonValueKind.String ? value.GetString() : null;

        Guid? Guid(string name) => System.Guid.TryParse(Text(name), out var id) ? id : null;
    }
}
