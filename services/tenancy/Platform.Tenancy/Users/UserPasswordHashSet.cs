namespace Platform.Tenancy.Users;

/// <summary>
/// Tenancy's own event, never published: the user's password verifier (ASP.NET Core's PBKDF2 hash, salted).
/// The password itself is never stored or logged.
/// </summary>
public sealed record UserPasswordHashSet(Guid UserId, string PasswordHash, DateTimeOffset SetAt);
