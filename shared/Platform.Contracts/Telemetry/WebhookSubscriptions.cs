namespace Platform.Contracts.Telemetry;

/// <summary>A webhook subscription exists. Never carries its signing secret.</summary>
public sealed record WebhookSubscriptionCreated(Guid SubscriptionId, Guid? TenantId, string Url, IReadOnlyList<string>? EventTypes, DateTimeOffset CreatedAt) : IIntegrationEvent;

public sealed record WebhookSubscriptionDeleted(Guid SubscriptionId, Guid? TenantId, DateTimeOffset DeletedAt) : IIntegrationEvent;
