namespace Platform.Contracts.Tenancy;

public sealed record TenantCreated(Guid TenantId, string Slug, string Name, DateTimeOffset CreatedAt) : IIntegrationEvent;
