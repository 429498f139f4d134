using System.Text.Json;
using MassTransit;
using Platform.Contracts;
using Platform.Messaging.Relay;

namespace Platform.Telemetry.Audit;

/// <summary>
/// Receives every integration event through the <see cref="IIntegrationEvent"/> exchange and records it as
/// it was sent (the message JSON verbatim, the relay's headers for where, who and when). Redeliveries and
/// events published twice are recorded once: the event id (the message id) is unique in the log.
/// </summary>
public sealed class AuditConsumer(AuditLog log, TimeProvider time) : IConsumer<IIntegrationEvent>
{
    public async Task Consume(ConsumeContext<IIntegrationEvent> context)
    {
        using var envelope = JsonDocument.Parse(context.ReceiveContext.Body.GetBytes());
        var message = envelope.RootElement.GetProperty("message").Clone();
        var type = context.Headers.Get<string>(RelayHeaders.EventType) ?? TypeOf(envelope.RootElement);
        var occurredAt = DateTimeOffset.TryParse(context.Headers.Get<string>(RelayHeaders.RecordedAt), out var recorded)
            ? recorded
            : context.SentTime is { } sent ? new DateTimeOffset(sent, TimeSpan.Zero) : time.GetUtcNow();
        await log.RecordAsync(new AuditEntry(
            0,
            context.MessageId ?? throw new InvalidOperationException("An event arrived without a message id; it cannot be recorded once."),
            type,
            context.Headers.Get<string>(RelayHeaders.Source) ?? "unknown",
            context.Headers.Get<string>(RelayHeaders.StreamId),
            Guid.TryParse(context.Headers.Get<string>(RelayHeaders.TenantId), out var tenant) ? tenant : null,
            context.Headers.Get<string>(RelayHeaders.Actor),
            context.CorrelationId,
            occurredAt,
            time.GetUtcNow(),
            message), context.CancellationToken);
    }

    /// <summary>The concrete type from the envelope's first message type (<c>urn:message:Namespace:Type</c>).</summary>
    private static string TypeOf(JsonElement envelope) =>
        envelope.GetProperty("messageType").EnumerateArray().First().GetString()!.Split(':').Last();
}
