namespace Platform.Contracts.Telemetry;

/// <summary>A webhook subscription exists. Never carries its signing secret.</summary>
public sealed record WebhookSubscriptionCreated(Guid SubscriptionId, Guid? TenantId, string Url, IReadOnlyList<string>? EventTypes, DateTimeOffset CreatedAt) : IIntegrationEvent;

public sealed record WebhookSubscriptionDeleted(Guid SubscriptionId, Guid? TenantId, DateTimeOffset DeletedAt) : IIntegrationEvent;

/// <summary>
/// A subscription of kind <c>amqp</c> exists: a broker user that may only read and acknowledge its own durable queue, which
/// receives the events of <paramref name="TenantId"/> (every event when null). Never carries the user's password.
/// </summary>
public sealed record BrokerSubscriptionCreated(Guid SubscriptionId, Guid? TenantId, string Queue, string Username, DateTimeOffset CreatedAt) : IIntegrationEvent;

/// <summary>Its broker user and queue are deleted.</summary>
public sealed record BrokerSubscriptionDeleted(Guid SubscriptionId, Guid? TenantId, DateTimeOffset DeletedAt) : IIntegrationEvent;
