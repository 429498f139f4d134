namespace Platform.Contracts.Tenancy;

/// <summary>A user exists; <paramref name="TenantId"/> is null for a platform-admin. Never carries credentials.</summary>
public sealed record UserCreated(Guid UserId, Guid? TenantId, string Username, string Role, DateTimeOffset CreatedAt) : IIntegrationEvent;
