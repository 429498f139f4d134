using System.Security.Claims;
using System.Security.Cryptography;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Platform.Hosting.Security;

/// <summary>
/// The platform's access tokens: ES256 JWTs issued by tenancy, validated by the gateway against the public
/// keys tenancy publishes (<see cref="SigningKeySet"/>). One place for the format both sides must agree on.
/// </summary>
public static class AccessTokens
{
    public const string Issuer = "platform";
    public const string Audience = "platform-api";
    public const string RoleClaim = "role";
    public const string TenantClaim = "tenant";
    public const string NameClaim = "name";

    private static readonly JsonWebTokenHandler Handler = new() { SetDefaultTimesOnTokenCreation = false };

    public static string Issue(SigningKey key, string subject, string name, string role, Guid? tenantId, DateTimeOffset now, TimeSpan lifetime)
    {
        var claims = new Dictionary<string, object>
        {
            [JwtRegisteredClaimNames.Sub] = subject,
            [JwtRegisteredClaimNames.Jti] = Guid.CreateVersion7(now).ToString(),
            [NameClaim] = name,
            [RoleClaim] = role,
        };
        if (tenantId is { } tenant)
        {
            claims[TenantClaim] = tenant.ToString();
        }

        return Handler.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = Issuer,
            Audience = Audience,
            Claims = claims,
            IssuedAt = now.UtcDateTime,
            NotBefore = now.UtcDateTime,
            Expires = (now + lifetime).UtcDateTime,
            SigningCredentials = new SigningCredentials(key.SecurityKey, SecurityAlgorithms.EcdsaSha256),
        });
    }

    /// <summary>The caller a token stands for, or null when its signature, issuer, audience, lifetime or claims do not hold.</summary>
    public static async Task<Caller?> ValidateAsync(string token, IEnumerable<SecurityKey> keys, DateTimeOffset now)
    {
        var result = await Handler.ValidateTokenAsync(token, new TokenValidationParameters
        {
            ValidIssuer = Issuer,
            ValidAudience = Audience,
            IssuerSigningKeys = keys,
            ValidAlgorithms = [SecurityAlgorithms.EcdsaSha256],
            RequireExpirationTime = true,
            RequireSignedTokens = true,
            ClockSkew = TimeSpan.FromSeconds(30),
            LifetimeValidator = (notBefore, expires, _, _) => expires is { } end && end > now.UtcDateTime.AddSeconds(-30) && (notBefore is null || notBefore <= now.UtcDateTime.AddSeconds(30)),
        });
        if (!result.IsValid)
        {
            return null;
        }

        var subject = result.ClaimsIdentity.FindFirst(JwtRegisteredClaimNames.Sub)?.Value ?? result.ClaimsIdentity.FindFirst(ClaimTypes.NameIdentifier)?.Value;
        var role = result.ClaimsIdentity.FindFirst(RoleClaim)?.Value ?? result.ClaimsIdentity.FindFirst(ClaimTypes.Role)?.Value;
        var tenant = result.ClaimsIdentity.FindFirst(TenantClaim)?.Value;
        if (subject is null || role is null || !Roles.All.Contains(role))
        {
            return null;
        }

        return new Caller("user:" + subject, role, Guid.TryParse(tenant, out var tenantId) ? tenantId : null);
    }
}

/// <summary>One ES256 signing key with its id; its public half is published as a JWK.</summary>
public sealed class SigningKey(string keyId, ECDsa key)
{
    public string KeyId { get; } = keyId;

    public ECDsaSecurityKey SecurityKey { get; } = new(key) { KeyId = keyId };

    public static SigningKey Generate(string keyId) => new(keyId, ECDsa.Create(ECCurve.NamedCurves.nistP256));

    public static SigningKey FromPrivateKey(string keyId, byte[] pkcs8)
    {
        var key = ECDsa.Create();
        key.ImportPkcs8PrivateKey(pkcs8, out _);
        return new SigningKey(keyId, key);
    }

    public byte[] ExportPrivateKey() => SecurityKey.ECDsa.ExportPkcs8PrivateKey();

    public PublicJwk ToPublicJwk()
    {
        var parameters = SecurityKey.ECDsa.ExportParameters(includePrivateParameters: false);
        return new PublicJwk("EC", "P-256", Base64UrlEncoder.Encode(parameters.Q.X!), Base64UrlEncoder.Encode(parameters.Q.Y!), KeyId, "ES256", "sig");
    }
}

/// <summary>A public key as JSON Web Key (RFC 7517).</summary>
public sealed record PublicJwk(string Kty, string Crv, string X, string Y, string Kid, string Alg, string Use)
{
    public SecurityKey ToSecurityKey()
    {
        var key = ECDsa.Create(new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            Q = new ECPoint { X = Base64UrlEncoder.DecodeBytes(X), Y = Base64UrlEncoder.DecodeBytes(Y) },
        });
        return new ECDsaSecurityKey(key) { KeyId = Kid };
    }
}

/// <summary>The published key set: <c>{"keys": [...]}</c>.</summary>
public sealed record SigningKeySet(IReadOnlyList<PublicJwk> Keys);
