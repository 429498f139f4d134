using Amazon.Runtime;
using Platform.Contracts.Provisioning;
using Platform.Provisioning.Drivers.Cloud;
using Platform.Provisioning.Drivers.Cloud.Aws;

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
        var client = credentials is null ? null
            : new Ec2Client(Http.Value, credentials, region => endpoint ?? Ec2Client.PublicEndpoint(region), RetryOf(options), TimeProvider.System);
        return Create("aws", catalogue, client, missing, options, loggers);
    }

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
