using Platform.Hosting.Startup;
using Yarp.ReverseProxy.Configuration;

namespace Platform.Gateway;

/// <summary>
/// The gateway's route table: <c>/api/v1/{service}/…</c> and each service's public resources go to that
/// service, at the address configured under <c>Platform:Gateway:Services:{service}</c>.
/// </summary>
public static class ServiceRoutes
{
    public const string ConfigurationSection = "Platform:Gateway:Services";

    /// <summary>Every service, with the top-level resources of the public API it owns.</summary>
    public static readonly IReadOnlyDictionary<string, string[]> Services = new Dictionary<string, string[]>
    {
        ["provisioning"] = ["machines", "operations", "hosts", "templates"],
        ["networking"] = ["networks", "exit-nodes", "tunnels"],
        ["tenancy"] = ["auth", "tenants", "users", "api-keys", "quotas", "governance"],
        ["telemetry"] = ["audit", "events", "subscriptions", "healing", "automation"],
    };

    public static IReadOnlyDictionary<string, Uri> Addresses(IConfiguration configuration)
    {
        var addresses = new Dictionary<string, Uri>();
        foreach (var service in Services.Keys)
        {
            var key = $"{ConfigurationSection}:{service}";
            var address = configuration[key];
            if (string.IsNullOrEmpty(address))
            {
                throw new StartupException($"{key} is not set: the gateway needs the address of every service (environment variable {key.Replace(":", "__", StringComparison.Ordinal)}).");
            }

            if (!Uri.TryCreate(address, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            {
                throw new StartupException($"{key} must be an http(s) URL, not '{address}'.");
            }

            addresses[service] = uri;
        }

        return addresses;
    }

    public static (IReadOnlyList<RouteConfig> Routes, IReadOnlyList<ClusterConfig> Clusters) Build(IReadOnlyDictionary<string, Uri> addresses)
    {
        var routes = new List<RouteConfig>();
        var clusters = new List<ClusterConfig>();
        foreach (var (service, resources) in Services)
        {
            foreach (var prefix in resources.Prepend(service))
            {
                routes.Add(new RouteConfig
                {
                    RouteId = $"{service}-{prefix}",
                    ClusterId = service,
                    Match = new RouteMatch { Path = $"/api/v1/{prefix}/{{**rest}}" },
                });
            }

            clusters.Add(new ClusterConfig
            {
                ClusterId = service,
                Destinations = new Dictionary<string, DestinationConfig> { [service] = new() { Address = addresses[service].ToString() } },
                HttpRequest = new Yarp.ReverseProxy.Forwarder.ForwarderRequestConfig { ActivityTimeout = TimeSpan.FromSeconds(100) },
            });
        }

        return (routes, clusters);
    }
}
