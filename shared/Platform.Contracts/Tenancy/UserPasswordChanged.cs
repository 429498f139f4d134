namespace Platform.Contracts.Tenancy;

public sealed record UserPasswordChanged(Guid UserId, Guid? TenantId, DateTimeOffset ChangedAt) : IIntegrationEvent;
