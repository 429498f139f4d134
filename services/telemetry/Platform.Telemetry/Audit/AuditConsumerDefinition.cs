using MassTransit;
using Platform.Messaging;

namespace Platform.Telemetry.Audit;

/// <summary>The audit consumer listens on the endpoint every service declares at start (<see cref="PlatformTopology"/>).</summary>
public sealed class AuditConsumerDefinition : ConsumerDefinition<AuditConsumer>
{
    public AuditConsumerDefinition() => EndpointName = PlatformTopology.AuditEndpoint;
}
