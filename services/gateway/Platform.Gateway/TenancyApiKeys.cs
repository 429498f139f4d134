using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using Platform.Contracts;
using Platform.Hosting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;

namespace Platform.Gateway;

/// <summary>
/// Resolves an API key to its caller by asking tenancy, which alone holds the keys' hashes. Answers are
/// cached for a few seconds (never past a key's expiry), so a revocation takes effect within
/// <see cref="CacheFor"/>, and a flood of requests with one key costs tenancy one lookup per interval.
/// </summary>
public sealed class TenancyApiKeys(HttpClient http, PlatformSettings settings, TimeProvider time)
{
    public static readonly TimeSpan CacheFor = TimeSpan.FromSeconds(5);
    private const int MaxCachedKeys = 10_000;

    private readonly ConcurrentDictionary<string, (Caller? Caller, DateTimeOffset Until)> _cache = new();

    public async Task<Caller?> ResolveAsync(string key, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var cacheKey = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
        if (_cache.TryGetValue(cacheKey, out var cached) && cached.Until > now)
        {
            return cached.Caller;
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, "internal/api-keys/introspect") { Content = JsonContent.Create(new { key }, options: PlatformJson.Options) };
        request.Headers.Add(IdentityHeaders.InternalToken, settings.InternalToken);
        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, cancellationToken);
        }
        catch (HttpRequestException)
        {
            throw new ProblemException(ProblemTypes.ServiceUnavailable, StatusCodes.Status503ServiceUnavailable, "API keys cannot be checked now.", "Tenancy does not answer; retry shortly or use a bearer token.");
        }

        using (response)
        {
            Caller? caller = null;
            var until = now + CacheFor;
            if (response.StatusCode == HttpStatusCode.OK)
            {
                var found = await response.Content.ReadFromJsonAsync<Introspected>(PlatformJson.Options, cancellationToken);
                caller = new Caller($"api-key:{found!.KeyId}", found.Role, found.TenantId);
                if (found.ExpiresAt is { } expires && expires < until)
                {
                    until = expires;
                }
            }
            else if (response.StatusCode != HttpStatusCode.NotFound)
            {
                throw new ProblemException(ProblemTypes.ServiceUnavailable, StatusCodes.Status503ServiceUnavailable, "API keys cannot be checked now.", $"Tenancy answered {(int)response.StatusCode}.");
            }

            if (_cache.Count >= MaxCachedKeys)
            {
                _cache.Clear();
            }

            _cache[cacheKey] = (caller, until);
            return caller;
        }
    }

    private sealed record Introspected(Guid KeyId, Guid? TenantId, string Role, DateTimeOffset? ExpiresAt);
}
