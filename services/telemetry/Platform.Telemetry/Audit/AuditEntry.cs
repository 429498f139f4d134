using System.Text.Json;

namespace Platform.Telemetry.Audit;

/// <summary>
/// One event as the audit log keeps it. <see cref="Position"/> is the audit log's global order across
/// every service; <see cref="Source"/>, <see cref="StreamId"/>, <see cref="StreamVersion"/> and <see cref="EventId"/> say
/// where it came from, and <see cref="State"/> where to read the state it produced.
/// </summary>
public sealed record AuditEntry(
    long Position,
    Guid EventId,
    string Type,
    string Source,
    string? StreamId,
    long? StreamVersion,
    Guid? TenantId,
    string? Actor,
    Guid? CorrelationId,
    DateTimeOffset OccurredAt,
    DateTimeOffset RecordedAt,
    JsonElement Data)
{
    /// <summary>The route that answers the resource as this event left it, where there is one: a machine at that version.</summary>
    public string? State =>
        StreamVersion is { } version && StreamId is { } stream && stream.StartsWith(MachineStreamPrefix, StringComparison.Ordinal)
            && Guid.TryParse(stream.AsSpan(MachineStreamPrefix.Length), out var machineId)
            ? $"/api/v1/machines/{machineId}?version={version}"
            : null;

    private const string MachineStreamPrefix = "machine-";
}

/// <summary>
/// What to read from the audit log: all of it in order after <see cref="After"/>, narrowed by each filter that is set;
/// the first <see cref="Limit"/> entries, or with <see cref="Newest"/> the last (still in order).
/// </summary>
public sealed record AuditQuery(
    long After = 0,
    Guid? TenantId = null,
    bool AllTenants = false,
    IReadOnlyList<string>? Types = null,
    string? StreamId = null,
    string? Actor = null,
    DateTimeOffset? From = null,
    DateTimeOffset? Until = null,
    int Limit = 100,
    bool Newest = false);
