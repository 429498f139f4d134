using System.Security.Cryptography;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Platform.Hosting.Security;

/// <summary>
/// What provisioning allows one caller to do inside one machine, for a short while: <see cref="Access"/> is
/// <see cref="MachineGrants.Read"/> (processes, output, files, logs) or <see cref="MachineGrants.Write"/> (exec, stdin,
/// signals, writing and deleting files, and reading).
/// </summary>
public sealed record MachineGrant(Guid MachineId, Guid TenantId, Guid HostId, string Actor, string Access)
{
    public bool AllowsWrite => Access == MachineGrants.Write;
}

/// <summary>
/// The grants that carry provisioning's decision to a host agent: ES256 JWTs in <see cref="Header"/>, signed with a key
/// of the provisioning instance, valid for <see cref="Lifetime"/> and on one host only. One place for the format both
/// sides must agree on.
/// </summary>
public static class MachineGrants
{
    public const string Header = "X-Platform-Grant";
    public const string Read = "read";
    public const string Write = "write";
    public static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(60);

    private const string Issuer = "provisioning";
    private const string Audience = "host-agent";
    private static readonly JsonWebTokenHandler Handler = new() { SetDefaultTimesOnTokenCreation = false };

    public static string Issue(ECDsaSecurityKey key, MachineGrant grant, DateTimeOffset now) =>
        Handler.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = Issuer,
            Audience = Audience,
            Claims = new Dictionary<string, object>
            {
                [JwtRegisteredClaimNames.Sub] = grant.Actor,
                ["machine"] = grant.MachineId.ToString(),
                ["tenant"] = grant.TenantId.ToString(),
                ["host"] = grant.HostId.ToString(),
                ["access"] = grant.Access,
            },
            IssuedAt = now.UtcDateTime,
            NotBefore = now.UtcDateTime,
            Expires = (now + Lifetime).UtcDateTime,
            SigningCredentials = new SigningCredentials(key, SecurityAlgorithms.EcdsaSha256),
        });

    /// <summary>The grant a token carries, when one of <paramref name="keys"/> signed it, it is current and it is for <paramref name="hostId"/>; null otherwise.</summary>
    public static async Task<MachineGrant?> ValidateAsync(string token, IEnumerable<SecurityKey> keys, Guid hostId, DateTimeOffset now)
    {
        var result = await Handler.ValidateTokenAsync(token, new TokenValidationParameters
        {
            ValidIssuer = Issuer,
            ValidAudience = Audience,
            IssuerSigningKeys = keys,
            ValidAlgorithms = [SecurityAlgorithms.EcdsaSha256],
            RequireExpirationTime = true,
            RequireSignedTokens = true,
            LifetimeValidator = (notBefore, expires, _, _) => expires is { } end && end > now.UtcDateTime.AddSeconds(-5) && (notBefore is null || notBefore <= now.UtcDateTime.AddSeconds(5)),
        });
        if (!result.IsValid)
        {
            return null;
        }

        string? Claim(string name) => result.Claims.TryGetValue(name, out var value) ? value as string : null;
        return Guid.TryParse(Claim("machine"), out var machine) && Guid.TryParse(Claim("tenant"), out var tenant)
            && Guid.TryParse(Claim("host"), out var host) && host == hostId
            && Claim(JwtRegisteredClaimNames.Sub) is { Length: > 0 } actor && Claim("access") is Read or Write
            ? new MachineGrant(machine, tenant, host, actor, Claim("access")!)
            : null;
    }

    /// <summary>A new signing key for one provisioning instance (its id names it in every grant it signs).</summary>
    public static ECDsaSecurityKey NewKey() => new(ECDsa.Create(ECCurve.NamedCurves.nistP256)) { KeyId = Guid.CreateVersion7().ToString("N") };

    /// <summary>The key's public half, as an agent is told it (SubjectPublicKeyInfo, base64).</summary>
    public static string PublicKeyOf(ECDsaSecurityKey key) => Convert.ToBase64String(key.ECDsa.ExportSubjectPublicKeyInfo());

    public static ECDsaSecurityKey VerificationKey(string keyId, string publicKey)
    {
        var key = ECDsa.Create();
        key.ImportSubjectPublicKeyInfo(Convert.FromBase64String(publicKey), out _);
        return new ECDsaSecurityKey(key) { KeyId = keyId };
    }
}
