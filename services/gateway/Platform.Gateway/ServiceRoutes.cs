using Platform.Hosting.Startup;
using Yarp.ReverseProxy.Configuration;

namespace Platform.Gateway;

/// <summary>
/// The gateway's route table: <c>/api/v1/{service}/…</c>, each service's public resources and the sub-resources it
/// answers under another's go to that service, at the address configured under <c>Platform:Gateway:Services:{service}</c>.
/// </summary>
public static class ServiceRoutes
{
    public const string ConfigurationSection = "Platform:Gateway:Services";

    /// <summary>Every service, with the top-level resources of the public API it owns.</summary>
    public static readonly IReadOnlyDictionary<string, string[]> Services = new Dictionary<string, string[]>
    {
        ["provisioning"] = ["machines", "operations", "hosts", "templates", "snapshots"],
        ["networking"] = ["networks", "exit-nodes", "tunnels", "port-forwards"],
        ["tenancy"] = ["auth", "tenants", "users", "api-keys", "quotas", "governance"],
        ["telemetry"] = ["audit", "events", "subscriptions", "healing", "automation", "costs"],
    };

    /// <summary>
    /// Paths under another service's resource that a service answers: a machine's metrics and health, and a host's
    /// metrics, are telemetry's, and a machine's port forwards networking's, though <c>machines</c> and <c>hosts</c> are
    /// provisioning's. They are matched before any resource's catch-all (a lower <see cref="RouteConfig.Order"/>).
    /// </summary>
    public static readonly IReadOnlyList<(string Service, string Path)> SubResources =
    [
        ("telemetry", "/api/v1/machines/{id}/metrics"),
        ("telemetry", "/api/v1/machines/{id}/health"),
        ("telemetry", "/api/v1/hosts/{id}/metrics"),
        ("networking", "/api/v1/machines/{id}/ports"),
        ("networking", "/api/v1/machines/{id}/ports/{**rest}"),
    ];

    private const int SubResourceOrder = -1;

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

            foreach (var path in SubResources.Where(r => r.Service == service).Select(r => r.Path))
            {
                routes.Add(new RouteConfig
                {
                    RouteId = $"{service}-{path.Replace("/api/v1/", "", StringComparison.Ordinal).Replace("/{id}/", "-", StringComparison.Ordinal).Replace("/{**rest}", "-item", StringComparison.Ordinal)}",
                    ClusterId = service,
                    Order = SubResourceOrder,
                    Match = new RouteMatch { Path = path },
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
