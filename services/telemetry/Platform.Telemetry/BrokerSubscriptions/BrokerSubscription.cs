namespace Platform.Telemetry.BrokerSubscriptions;

/// <summary>A subscription of kind <c>amqp</c>: its broker user reads its queue, which receives <see cref="TenantId"/>'s events (every event when null).</summary>
public sealed record BrokerSubscription(Guid Id, Guid? TenantId, string Queue, string Username, DateTimeOffset CreatedAt)
{
    /// <summary>Every name is the subscription's: a retried creation or deletion finds what an earlier try made.</summary>
    public static BrokerSubscription For(Guid id, Guid? tenantId, DateTimeOffset createdAt) =>
        new(id, tenantId, $"platform.subscription.{id:N}", $"platform-subscriber-{id:N}", createdAt);
}
