namespace Platform.Contracts.Tenancy;

public sealed record ApiKeyRevoked(Guid KeyId, Guid? TenantId, DateTimeOffset RevokedAt) : IIntegrationEvent;
