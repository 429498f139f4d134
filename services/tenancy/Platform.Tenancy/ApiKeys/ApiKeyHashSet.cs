namespace Platform.Tenancy.ApiKeys;

/// <summary>Tenancy's own event, never published: the SHA-256 of an API key (the key is shown once and never stored).</summary>
public sealed record ApiKeyHashSet(Guid KeyId, string KeyHash);
