using Microsoft.AspNetCore.Identity;

namespace Platform.Tenancy.Users;

/// <summary>Hashes and verifies passwords with ASP.NET Core's PasswordHasher (PBKDF2-HMAC-SHA512, salted, versioned).</summary>
public sealed class Passwords
{
    private static readonly PasswordHasher<Passwords> Hasher = new();

    // Verifying against this when the user does not exist keeps a wrong username as slow as a wrong password.
    private static readonly string DecoyHash = Hasher.HashPassword(new Passwords(), Guid.NewGuid().ToString());

    public string Hash(string password) => Hasher.HashPassword(this, password);

    /// <summary>Whether <paramref name="password"/> matches; <paramref name="rehash"/> tells that the stored hash uses old parameters.</summary>
    public bool Verify(string? hash, string password, out bool rehash)
    {
        var result = Hasher.VerifyHashedPassword(this, hash ?? DecoyHash, password);
        rehash = result == PasswordVerificationResult.SuccessRehashNeeded;
        return hash is not null && result != PasswordVerificationResult.Failed;
    }
}
