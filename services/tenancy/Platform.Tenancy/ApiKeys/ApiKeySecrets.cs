using System.Security.Cryptography;
using System.Text;

namespace Platform.Tenancy.ApiKeys;

/// <summary>
/// API keys look like <c>plk_&lt;prefix&gt;_&lt;secret&gt;</c>: the prefix names the key in listings and logs, the
/// secret is 32 random bytes. Keys carry 256 bits of entropy, so a single SHA-256 is the right verifier
/// (a slow password hash would add nothing but latency to every request).
/// </summary>
public static class ApiKeySecrets
{
    public const string Scheme = "plk";

    public static (string Key, string Prefix) Generate()
    {
        var prefix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        var secret = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        return ($"{Scheme}_{prefix}_{secret}", prefix);
    }

    public static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    /// <summary>The prefix of a well-formed key, or null.</summary>
    public static string? PrefixOf(string key)
    {
        var parts = key.Split('_', 3);
        return parts is [Scheme, { Length: 8 } prefix, { Length: > 20 }] ? prefix : null;
    }
}
