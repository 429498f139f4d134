using Platform.Contracts;
using RabbitMQ.Client;

namespace Platform.Messaging;

/// <summary>
/// The part of the broker's topology that must exist before any service publishes: the audit queue, bound
/// to the exchange every integration event reaches. Every service declares it at start (idempotently, with
/// the properties MassTransit gives it), so events published before telemetry's first start still wait
/// for it in the queue instead of being dropped by an exchange with nothing bound.
/// </summary>
public static class PlatformTopology
{
    /// <summary>The exchange MassTransit routes every <see cref="IIntegrationEvent"/> to.</summary>
    public static readonly string IntegrationEventsExchange = $"{typeof(IIntegrationEvent).Namespace}:{nameof(IIntegrationEvent)}";

    /// <summary>Telemetry's audit endpoint: its queue and the exchange in front of it share the name.</summary>
    public const string AuditEndpoint = "telemetry-audit";

    public static async Task DeclareAsync(IConnection connection, CancellationToken cancellationToken)
    {
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        await channel.ExchangeDeclareAsync(IntegrationEventsExchange, ExchangeType.Fanout, durable: true, autoDelete: false, cancellationToken: cancellationToken);
        await channel.ExchangeDeclareAsync(AuditEndpoint, ExchangeType.Fanout, durable: true, autoDelete: false, cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(AuditEndpoint, durable: true, exclusive: false, autoDelete: false, cancellationToken: cancellationToken);
        await channel.QueueBindAsync(AuditEndpoint, AuditEndpoint, "", cancellationToken: cancellationToken);
        await channel.ExchangeBindAsync(AuditEndpoint, IntegrationEventsExchange, "", cancellationToken: cancellationToken);
    }
}
