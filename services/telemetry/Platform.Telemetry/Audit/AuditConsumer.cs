using System.Text.Json;
using MassTransit;
using Platform.Contracts;
using Platform.Messaging;
using Platform.Messaging.Relay;

namespace Platform.Telemetry.Audit;

/// <summary>
/// Receives every integration event through the <see cref="IIntegrationEvent"/> exchange and records it as
/// it was sent (the message JSON verbatim, the relay's headers for where, who and when), in batches: one
/// statement and one commit per batch keeps the ordered section of the log short. Redeliveries and events
/// published twice are recorded once: the event id (the message id) is unique in the log.
/// </summary>
public sealed class AuditConsumer(AuditLog log, TimeProvider time) : IConsumer<Batch<IIntegrationEvent>>
{
    public async Task Consume(ConsumeContext<Batch<IIntegrationEvent>> context)
    {
        var entries = context.Message.Select(Entry).ToArray();
        await log.RecordAsync(entries, context.CancellationToken);
    }

    private AuditEntry Entry(ConsumeContext<IIntegrationEvent> context)
    {
        using var envelope = JsonDocument.Parse(context.ReceiveContext.Body.GetBytes());
        var type = context.Headers.Get<string>(RelayHeaders.EventType) ?? TypeOf(envelope.RootElement);
        var occurredAt = DateTimeOffset.TryParse(context.Headers.Get<string>(RelayHeaders.RecordedAt), out var recorded)
            ? recorded
            : context.SentTime is { } sent ? new DateTimeOffset(sent, TimeSpan.Zero) : time.GetUtcNow();
        return new AuditEntry(
            0,
            context.MessageId ?? throw new InvalidOperationException("An event arrived without a message id; it cannot be recorded once."),
            type,
            context.Headers.Get<string>(RelayHeaders.Source) ?? "unknown",
            context.Headers.Get<string>(RelayHeaders.StreamId),
            StreamVersion(context.Headers),
            Guid.TryParse(context.Headers.Get<string>(RelayHeaders.TenantId), out var tenant) ? tenant : null,
            context.Headers.Get<string>(RelayHeaders.Actor),
            context.CorrelationId,
            occurredAt,
            time.GetUtcNow(),
            envelope.RootElement.GetProperty("message").Clone());
    }

    /// <summary>The relay's stream version header: a number on the wire, whichever integer type the transport gives back.</summary>
    private static long? StreamVersion(Headers headers) =>
        headers.TryGetHeader(RelayHeaders.StreamVersion, out var value)
            ? value switch
            {
                long number => number,
                int number => number,
                string text when long.TryParse(text, out var number) => number,
                _ => null,
            }
            : null;

    /// <summary>The concrete type from the envelope's first message type (<c>urn:message:Namespace:Type</c>).</summary>
    private static string TypeOf(JsonElement envelope) =>
        envelope.GetProperty("messageType").EnumerateArray().First().GetString()!.Split(':').Last();
}

/// <summary>
/// On the endpoint every service declares at start (<see cref="PlatformTopology"/>): batches of up to 500
/// events or 20 ms, one batch at a time per instance.
/// </summary>
public sealed class AuditConsumerDefinition : ConsumerDefinition<AuditConsumer>
{
    public AuditConsumerDefinition() => EndpointName = PlatformTopology.AuditEndpoint;

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<AuditConsumer> consumer, IRegistrationContext context)
    {
        endpoint.PrefetchCount = 1000;
        consumer.Options<BatchOptions>(batch => batch.SetMessageLimit(500).SetTimeLimit(TimeSpan.FromMilliseconds(20)).SetConcurrencyLimit(1));
    }
}
