using System.IdentityModel.Tokens.Jwt;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json.Serialization;
using Microsoft.IdentityModel.Tokens;

namespace Platform.Provisioning.Drivers.Cloud.Gcp;

/// <summary>
/// OAuth2 access tokens for a service account by the JWT-bearer grant (RFC 7523, Google's "Using OAuth 2.0 for
/// server to server applications"): a JWT signed RS256 with the account's private key, claiming its email as
/// <c>iss</c>, the token endpoint as <c>aud</c> and the scope, is exchanged for a token; the token is kept until
/// shortly before it expires.
/// </summary>
public sealed class GoogleAccessTokens(HttpClient http, ServiceAccountKey key, Uri tokenEndpoint, string scope, TimeProvider time) : IDisposable
{
    public const string ComputeScope = "https://www.googleapis.com/auth/compute";
    private static readonly TimeSpan AssertionLifetime = TimeSpan.FromHours(1);
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly RSA _rsa = ImportKey(key);
    private (string Token, DateTimeOffset RefreshAt)? _current;

    /// <summary>A valid access token: the cached one while it has time left, else a new one.</summary>
    public async Task<string> GetAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_current is { } current && time.GetUtcNow() < current.RefreshAt)
            {
                return current.Token;
            }

            var issuedAt = time.GetUtcNow();
            var answer = await RequestAsync(Assertion(issuedAt), cancellationToken);
            var lifetime = TimeSpan.FromSeconds(answer.ExpiresIn);
            // Refreshed five minutes before it expires, or halfway through a short-lived one.
            var margin = TimeSpan.FromTicks(Math.Min(TimeSpan.FromMinutes(5).Ticks, lifetime.Ticks / 2));
            _current = (answer.AccessToken, issuedAt + lifetime - margin);
            return answer.AccessToken;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>The cloud refused the token (revoked, or the clock lied): the next call gets a new one.</summary>
    public void Forget() => _current = null;

    public void Dispose()
    {
        _rsa.Dispose();
        _gate.Dispose();
    }

    private string Assertion(DateTimeOffset issuedAt)
    {
        var signing = new SigningCredentials(new RsaSecurityKey(_rsa) { KeyId = key.PrivateKeyId }, SecurityAlgorithms.RsaSha256);
        var payload = new JwtPayload
        {
            ["iss"] = key.ClientEmail,
            ["scope"] = scope,
            ["aud"] = tokenEndpoint.ToString(),
            ["iat"] = issuedAt.ToUnixTimeSeconds(),
            ["exp"] = (issuedAt + AssertionLifetime).ToUnixTimeSeconds(),
        };
        return new JwtSecurityTokenHandler().WriteToken(new JwtSecurityToken(new JwtHeader(signing), payload));
    }

    private async Task<TokenAnswer> RequestAsync(string assertion, CancellationToken cancellationToken)
    {
        using var response = await http.PostAsync(tokenEndpoint, new FormUrlEncodedContent(
        [
            new("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            new("assertion", assertion),
        ]), cancellationToken);
        if (response.IsSuccessStatusCode && await response.Content.ReadFromJsonAsync<TokenAnswer>(cancellationToken) is { AccessToken.Length: > 0 } answer)
        {
            return answer;
        }

        var error = await ReadErrorAsync(response, cancellationToken);
        throw new CloudException("gcp", error?.Error ?? $"HTTP {(int)response.StatusCode}", error?.Description ?? "the token endpoint refused the service account's assertion", (int)response.StatusCode);
    }

    private static async Task<TokenError?> ReadErrorAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            return await response.Content.ReadFromJsonAsync<TokenError>(cancellationToken);
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    private static RSA ImportKey(ServiceAccountKey key)
    {
        var rsa = RSA.Create();
        rsa.ImportFromPem(key.PrivateKey);
        return rsa;
    }

    private sealed record TokenAnswer([property: JsonPropertyName("access_token")] string AccessToken, [property: JsonPropertyName("expires_in")] int ExpiresIn);

    private sealed record TokenError([property: JsonPropertyName("error")] string? Error, [property: JsonPropertyName("error_description")] string? Description);
}
