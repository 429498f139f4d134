using Google.Apis.Auth.OAuth2;
using Google.Apis.Auth.OAuth2.Responses;
using Google.Apis.Util;

namespace Platform.Provisioning.Drivers.Cloud.Gcp;

/// <summary>
/// OAuth2 access tokens for a service account (Google.Apis.Auth's <see cref="ServiceAccountCredential"/>): the
/// JWT-bearer grant with an RS256 assertion signed by the account's key, kept and refreshed by the library (from
/// 225 s before a token expires, in the background while it may still be used). A refusal of the token endpoint is a
/// <see cref="CloudException"/> with Google's error and description.
/// </summary>
public sealed class GoogleAccessTokens
{
    public const string ComputeScope = "https://www.googleapis.com/auth/compute";

    private readonly ServiceAccountCredential _credential;
    private volatile bool _refused;

    public GoogleAccessTokens(ServiceAccountKey key, Uri tokenEndpoint, string scope, TimeProvider time)
    {
        _credential = new ServiceAccountCredential(new ServiceAccountCredential.Initializer(key.ClientEmail, tokenEndpoint.ToString())
        {
            Scopes = [scope],
            KeyId = key.PrivateKeyId,
            ProjectId = key.ProjectId,
            Clock = new Clock(time),
        }.FromPrivateKey(key.PrivateKey));
    }

    /// <summary>A valid access token: the library's while it has time left, a new one after the cloud refused it.</summary>
    public async Task<string> GetAsync(CancellationToken cancellationToken)
    {
        try
        {
            if (_refused)
            {
                await _credential.RequestAccessTokenAsync(cancellationToken);
                _refused = false;
            }

            return await _credential.GetAccessTokenForRequestAsync(cancellationToken: cancellationToken);
        }
        catch (TokenResponseException refused)
        {
            throw new CloudException("gcp", refused.Error?.Error ?? $"HTTP {(int?)refused.StatusCode}",
                refused.Error?.ErrorDescription ?? "the token endpoint refused the service account's assertion", (int?)refused.StatusCode);
        }
    }

    /// <summary>The cloud refused the token (revoked, or the clock lied): the next call gets a new one.</summary>
    public void Forget() => _refused = true;

    /// <summary>The library's clock, from the platform's <see cref="TimeProvider"/>.</summary>
    private sealed class Clock(TimeProvider time) : IClock
    {
        public DateTime Now => time.GetLocalNow().DateTime;

        public DateTime UtcNow => time.GetUtcNow().UtcDateTime;
    }
}
