using Amazon.Runtime;
using Azure.Core;
using Platform.Contracts.Provisioning;
using Platform.Provisioning.Drivers.Cloud;
using Platform.Provisioning.Drivers.Cloud.Aws;
using Platform.Provisioning.Drivers.Cloud.Azure;
using Platform.Provisioning.Drivers.Cloud.Gcp;

namespace Platform.HostAgent.Drivers;

/// <summary>
/// Makes the cloud drivers from their settings: the catalogue they offer, and a client when their credentials are
/// found. A driver whose credentials are missing is still made, unavailable, so the host reports why.
/// </summary>
public static class CloudDrivers
{
    // Cloud APIs are few and long-lived connections; DNS changes still reach them within minutes.
    private static readonly Lazy<HttpClient> Http = new(() => new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
    {
        Timeout = TimeSpan.FromSeconds(100),
    });

    /// <summary>The <c>aws</c> driver with the credentials of the environment or the shared profile files.</summary>
    public static CloudDriver Aws(AwsOptions options, ILoggerFactory loggers)
    {
        var credentials = AwsCredentialSource.Find(options.Profile, out var missing);
        return Aws(options, credentials, missing, loggers);
    }

    /// <summary>The <c>aws</c> driver with these credentials; without them, unavailable for the reason <paramref name="missing"/> gives.</summary>
    public static CloudDriver Aws(AwsOptions options, AWSCredentials? credentials, string? missing, ILoggerFactory loggers)
    {
        var catalogue = new CloudCatalogue(options.Regions, TypesOf(options.InstanceTypes), options.Images);
        var endpoint = options.Endpoint is { } fixedEndpoint ? new Uri(fixedEndpoint) : null;
        var client = credentials is null ? null : new Ec2Instances(credentials, endpoint, RetryOf(options), Http.Value.Timeout);
        return Create("aws", catalogue, client, missing, options, loggers);
    }

    /// <summary>The <c>gcp</c> driver with the service account key of its settings or of <c>GOOGLE_APPLICATION_CREDENTIALS</c>.</summary>
    public static CloudDriver Gcp(GcpOptions options, ILoggerFactory loggers)
    {
        var catalogue = new CloudCatalogue(options.Zones, TypesOf(options.MachineTypes), options.Images);
        var key = ServiceAccountKey.Load(options.CredentialsFile ?? Environment.GetEnvironmentVariable("GOOGLE_APPLICATION_CREDENTIALS"), out var missing);
        var project = options.ProjectId ?? key?.ProjectId;
        if (key is not null && project is null)
        {
            missing = "no GCP project: set Platform:Agent:Gcp:ProjectId";
        }

        ComputeEngineClient? client = null;
        if (key is not null && project is not null)
        {
            try
            {
                var tokenEndpoint = new Uri(options.TokenEndpoint ?? key.TokenUri ?? "https://oauth2.googleapis.com/token");
                var tokens = new GoogleAccessTokens(key, tokenEndpoint, GoogleAccessTokens.ComputeScope, TimeProvider.System);
                var compute = options.ComputeEndpoint is { } endpoint ? new Uri(endpoint.EndsWith('/') ? endpoint : endpoint + "/") : ComputeEngineClient.PublicEndpoint;
                client = new ComputeEngineClient(Http.Value, tokens, compute, project, RetryOf(options), options.PollInterval, TimeProvider.System);
            }
            catch (Exception unusable) when (unusable is System.Security.Cryptography.CryptographicException or ArgumentException)
            {
                // The exception's message is about the PEM's shape, never its content.
                missing = $"the GCP service account key of {key.ClientEmail} holds no usable private key: {unusable.Message}";
            }
        }

        return Create("gcp", catalogue, client, missing, options, loggers);
    }

    /// <summary>The <c>azure</c> driver with the service principal of the standard environment variables.</summary>
    public static CloudDriver Azure(AzureOptions options, ILoggerFactory loggers)
    {
        var credential = ArmConnectionOf(options).FindCredential(out var missing);
        return Azure(options, credential, missing, loggers);
    }

    /// <summary>The <c>azure</c> driver with this credential; without it, unavailable for the reason <paramref name="missing"/> gives.</summary>
    public static CloudDriver Azure(AzureOptions options, TokenCredential? credential, string? missing, ILoggerFactory loggers)
    {
        var catalogue = new CloudCatalogue(options.Locations, TypesOf(options.VmSizes), options.Images);
        if (credential is not null && (options.SubscriptionId is null || options.ResourceGroup is null))
        {
            missing = "the azure driver needs Platform:Agent:Azure:SubscriptionId and ResourceGroup";
        }
        else if (credential is not null && options.SshPublicKey is null)
        {
            // Its VMs take no password, and Azure refuses a Linux VM that allows neither a password nor a key.
            missing = "the azure driver needs Platform:Agent:Azure:SshPublicKey: its VMs allow no password login";
        }

        var client = credential is null || missing is not null ? null
            : new AzureVirtualMachines(ArmConnectionOf(options).Client(credential, options.SubscriptionId!, RetryOf(options)),
                new AzureVmSettings(options.SubscriptionId!, options.ResourceGroup!, options.Subnets, options.AdminUsername, options.SshPublicKey, options.PollInterval));
        return Create("azure", catalogue, client, missing, options, loggers);
    }

    /// <summary>How the azure driver reaches Resource Manager and Entra with these settings: public Azure, or the endpoints, audience and CA they name.</summary>
    public static ArmConnection ArmConnectionOf(AzureOptions options) => new(
        options.ArmEndpoint is { } arm ? new Uri(arm) : null, options.ArmAudience, options.AuthorityHost is { } authority ? new Uri(authority) : null, options.TrustedCertificateFile);

    private static CloudDriver Create(string name, CloudCatalogue catalogue, ICloudInstances? client, string? unavailable, CloudOptions options, ILoggerFactory loggers)
    {
        var logger = loggers.CreateLogger<CloudDriver>();
        if (catalogue.Regions.Count == 0 || catalogue.InstanceTypes.Count == 0 || catalogue.Images.Count == 0)
        {
            unavailable ??= $"the {name} driver is not configured: Platform:Agent:{char.ToUpperInvariant(name[0])}{name[1..]} needs regions, instance types and images";
        }

        if (unavailable is not null)
        {
            logger.LogError("The {Driver} driver can take no machine: {Reason}", name, unavailable);
        }

        return new CloudDriver(name, catalogue, unavailable is null ? client : null, unavailable, options, TimeProvider.System, logger);
    }

    private static CloudRetry RetryOf(CloudOptions options) => new(options.RetryAttempts, options.RetryBaseDelay, options.RetryMaxDelay);

    private static List<InstanceType> TypesOf(Dictionary<string, InstanceTypeOptions> types) =>
        types.Select(t => new InstanceType(t.Key, t.Value.Vcpus, t.Value.MemoryMiB)).OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
}
