namespace Platform.Contracts.Tenancy;

/// <summary>An API key exists, identified by its short prefix. Never carries the key or its hash.</summary>
public sealed record ApiKeyCreated(Guid KeyId, Guid? TenantId, string Name, string Role, string Prefix, DateTimeOffset? ExpiresAt, DateTimeOffset CreatedAt) : IIntegrationEvent;
