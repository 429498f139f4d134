using System.Net.Http.Json;
using Microsoft.IdentityModel.Tokens;
using Platform.Contracts;
using Platform.Hosting;
using Platform.Hosting.Security;

namespace Platform.Gateway;

/// <summary>
/// The public keys tenancy signs tokens with, fetched from its key set and cached. A token signed by a key
/// not seen yet (a rotation) triggers one refresh, at most every ten seconds.
/// </summary>
public sealed class TenancyKeys(HttpClient http, PlatformSettings settings, TimeProvider time, ILogger<TenancyKeys> logger)
{
    private static readonly TimeSpan MaxAge = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan MinRefreshInterval = TimeSpan.FromSeconds(10);

    private readonly SemaphoreSlim _gate = new(1, 1);
    private IReadOnlyList<SecurityKey> _keys = [];
    private DateTimeOffset _fetchedAt = DateTimeOffset.MinValue;

    public async Task<IReadOnlyList<SecurityKey>> GetAsync(string? keyId, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var known = keyId is null || _keys.Any(k => k.KeyId == keyId);
        if (now - _fetchedAt < MaxAge && (known || now - _fetchedAt < MinRefreshInterval))
        {
            return _keys;
        }

        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (time.GetUtcNow() - _fetchedAt >= MinRefreshInterval)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, "api/v1/tenancy/jwks");
                request.Headers.Add(IdentityHeaders.InternalToken, settings.InternalToken);
                using var response = await http.SendAsync(request, cancellationToken);
                response.EnsureSuccessStatusCode();
                var set = await response.Content.ReadFromJsonAsync<SigningKeySet>(PlatformJson.Options, cancellationToken);
                _keys = set?.Keys.Select(k => k.ToSecurityKey()).ToArray() ?? [];
                _fetchedAt = time.GetUtcNow();
            }
        }
        catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException)
        {
            logger.LogWarning("Cannot fetch tenancy's signing keys: {Reason}", exception.Message);
        }
        finally
        {
            _gate.Release();
        }

        return _keys;
    }
}
