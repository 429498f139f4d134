using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace Platform.Testing.Clouds;

/// <summary>
/// The Microsoft Entra side of the fake: the v2.0 token endpoint's client-credentials grant
/// (<c>POST /{tenant}/oauth2/v2.0/token</c>), refusing as Entra does, with its AADSTS codes: an unknown tenant
/// (AADSTS90002), an unknown client (AADSTS700016), a wrong secret (AADSTS7000215, 401 <c>invalid_client</c>), a
/// scope for another resource (AADSTS500011).
/// </summary>
public sealed partial class ArmFake
{
    private async Task<(int, JsonNode)> TokenAsync(HttpRequest request, string tenant)
    {
        if (request.Method != "POST" || !request.HasFormContentType)
        {
            return TokenError(400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.");
        }

        var form = await request.ReadFormAsync();
        if (!string.Equals(tenant, TenantId, StringComparison.OrdinalIgnoreCase))
        {
            return TokenError(400, "invalid_request", 90002,
                $"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.");
        }

        if (form["grant_type"] != "client_credentials")
        {
            return TokenError(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.");
        }

        if (form["client_id"] != ClientId)
        {
            return TokenError(400, "unauthorized_client", 700016,
                $"Application with identifier '{form["client_id"]}' was not found in the directory '{TenantId}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.");
        }

        if (!FixedTimeEquals(form["client_secret"].ToString(), ClientSecret))
        {
            return TokenError(401, "invalid_client", 7000215,
                $"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{ClientId}'.");
        }

        // A scope is a resource and "/.default"; Entra accepts the resource with or without its trailing slash.
        var scope = form["scope"].ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(s => s.EndsWith("/.default", StringComparison.Ordinal));
        var resource = scope?[..^"/.default".Length].TrimEnd('/');
        if (resource is null || !string.Equals(resource, Audience.TrimEnd('/'), StringComparison.OrdinalIgnoreCase))
        {
            return TokenError(400, "invalid_resource", 500011,
                $"The resource principal named {resource} was not found in the tenant named {TenantId}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.");
        }

        var expires = DateTimeOffset.UtcNow + TokenLifetime;
        var token = AccessToken(expires);
        _tokens[token] = expires;
        var lifetime = (int)TokenLifetime.TotalSeconds;
        return (200, new JsonObject { ["token_type"] = "Bearer", ["expires_in"] = lifetime, ["ext_expires_in"] = lifetime, ["access_token"] = token });
    }

    /// <summary>Shaped like Entra's (a JWT: header, claims, signature), so tests can look for its parts in logs; this fake only looks it up.</summary>
    private string AccessToken(DateTimeOffset expires)
    {
        static string Part(string json) => Convert.ToBase64String(Encoding.UTF8.GetBytes(json)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var claims = new JsonObject { ["aud"] = Audience, ["tid"] = TenantId, ["appid"] = ClientId, ["exp"] = expires.ToUnixTimeSeconds(), ["jti"] = Guid.NewGuid().ToString() };
        return $"{Part("""{"typ":"JWT","alg":"RS256"}""")}.{Part(claims.ToJsonString())}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32))}";
    }

    private static bool FixedTimeEquals(string given, string expected) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(given), Encoding.UTF8.GetBytes(expected));

    /// <summary>Entra's error shape: the AADSTS code leads the description, followed by trace and correlation ids.</summary>
    private static (int, JsonNode) TokenError(int status, string error, int code, string description)
    {
        var (trace, correlation) = (Guid.NewGuid(), Guid.NewGuid());
        var now = DateTimeOffset.UtcNow;
        return (status, new JsonObject
        {
            ["error"] = error,
            ["error_description"] = $"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {now:yyyy-MM-dd HH:mm:ssZ}",
            ["error_codes"] = new JsonArray(code),
            ["timestamp"] = now.ToString("yyyy-MM-dd HH:mm:ssZ"),
            ["trace_id"] = trace.ToString(),
            ["correlation_id"] = correlation.ToString(),
            ["error_uri"] = $"https://login.microsoftonline.com/error?code={code}",
        });
    }
}
