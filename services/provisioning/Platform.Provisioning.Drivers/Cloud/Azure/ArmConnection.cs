using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Identity;
using Azure.ResourceManager;

namespace Platform.Provisioning.Drivers.Cloud.Azure;

/// <summary>
/// How the Azure driver reaches Azure Resource Manager: its endpoint and token audience (public Azure unless
/// configured: a sovereign cloud, Azure Stack Hub), the Microsoft Entra authority, and a certificate to trust
/// besides the system's (Azure Stack Hub's own CA). Credentials come from the standard environment variables.
/// </summary>
public sealed record ArmConnection(Uri? ArmEndpoint, string? ArmAudience, Uri? AuthorityHost, string? TrustedCertificateFile)
{
    /// <summary>
    /// A service principal from <c>AZURE_TENANT_ID</c>, <c>AZURE_CLIENT_ID</c> and <c>AZURE_CLIENT_SECRET</c> (or
    /// <c>AZURE_CLIENT_CERTIFICATE_PATH</c>), as Azure.Identity's EnvironmentCredential reads them; or null with
    /// <paramref name="missing"/> saying what to set.
    /// </summary>
    public TokenCredential? FindCredential(out string? missing)
    {
        missing = null;
        string? Variable(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : null;
        var (tenant, client, secret, certificate) = (Variable("AZURE_TENANT_ID"), Variable("AZURE_CLIENT_ID"), Variable("AZURE_CLIENT_SECRET"), Variable("AZURE_CLIENT_CERTIFICATE_PATH"));
        if (tenant is null || client is null || (secret is null && certificate is null))
        {
            missing = "no Azure credentials: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH) for a service principal";
            return null;
        }

        return secret is not null ? ServicePrincipal(tenant, client, secret) : ServicePrincipalWithCertificate(tenant, client, certificate!);
    }

    /// <summary>A service principal that signs in with a client secret at this connection's authority.</summary>
    public TokenCredential ServicePrincipal(string tenantId, string clientId, string clientSecret) =>
        new ClientSecretCredential(tenantId, clientId, clientSecret, new ClientSecretCredentialOptions { AuthorityHost = Authority, DisableInstanceDiscovery = !Discover, Transport = Transport() });

    /// <summary>A service principal that signs in with a certificate (a PEM or PFX file) at this connection's authority.</summary>
    public TokenCredential ServicePrincipalWithCertificate(string tenantId, string clientId, string certificateFile) =>
        new ClientCertificateCredential(tenantId, clientId, certificateFile, new ClientCertificateCredentialOptions { AuthorityHost = Authority, DisableInstanceDiscovery = !Discover, Transport = Transport() });

    /// <summary>
    /// A Resource Manager client for the subscription. Its pipeline retries throttled (429) and failed (5xx) requests
    /// itself, honouring <c>Retry-After</c>; <paramref name="retry"/> sets how often and how long it backs off otherwise.
    /// </summary>
    public ArmClient Client(TokenCredential credential, string subscriptionId, CloudRetry? retry = null)
    {
        var options = new ArmClientOptions { Transport = Transport() };
        if (retry is not null)
        {
            (options.Retry.Mode, options.Retry.MaxRetries, options.Retry.Delay, options.Retry.MaxDelay) = (RetryMode.Exponential, Math.Max(0, retry.Attempts - 1), retry.BaseDelay, retry.MaxDelay);
        }

        if (ArmEndpoint is not null)
        {
            options.Environment = new ArmEnvironment(ArmEndpoint, ArmAudience ?? ArmEndpoint.ToString());
        }

        return new ArmClient(credential, subscriptionId, options);
    }

    private Uri Authority => AuthorityHost ?? AzureAuthorityHosts.AzurePublicCloud;

    // Instance discovery asks login.microsoftonline.com about the authority: only right for Microsoft's own.
    private bool Discover => AuthorityHost is null;

    private HttpClientTransport Transport()
    {
        var handler = new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
        if (TrustedCertificateFile is { } file)
        {
            var trusted = X509Certificate2.CreateFromPem(File.ReadAllText(file));
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) => Trusts(trusted, certificate, errors);
        }

        return new HttpClientTransport(handler);
    }

    /// <summary>The system's trust, or a chain to the configured certificate; the name must match either way.</summary>
    private static bool Trusts(X509Certificate2 trusted, X509Certificate? presented, SslPolicyErrors errors)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        if (presented is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch) || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(trusted);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(new X509Certificate2(presented));
    }
}
