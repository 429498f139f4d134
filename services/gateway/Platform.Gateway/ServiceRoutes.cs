using Microsoft.Extensions.Configuration;
using Platform.Hosting.Startup;
using Yarp.ReverseProxy.Configuration;

namespace Platform.Gateway;

/// <summary>
/// The gateway's route table: <c>/api/v1/{service}/…</c> goes to that service, at the address configured
/// under <c>Platform:Gateway:Services:{service}</c>. The one public entry point; the services listen on loopback.
/// </summary>
public static class ServiceRoutes
{
    public const string ConfigurationSection = "Platform:Gateway:Services";

    public static readonly IReadOnlyList<string> Services = ["provisioning", "networking", "tenancy", "telemetry"];

    public static (IReadOnlyList<RouteConfig> Routes, IReadOnlyList<ClusterConfig> Clusters) Read(IConfiguration configuration)
    {
        var routes = new List<RouteConfig>();
        var clusters = new List<ClusterConfig>();
        foreach (var service in Services)
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

            routes.Add(new RouteConfig
            {
                RouteId = service,
                ClusterId = service,
                Match = new RouteMatch { Path = $"/api/v1/{service}/{{**rest}}" },
            });
            clusters.Add(new ClusterConfig
            {
                ClusterId = service,
                Destinations = new Dictionary<string, DestinationConfig> { [service] = new() { Address = uri.ToString() } },
                HttpRequest = new Yarp.ReverseProxy.Forwarder.ForwarderRequestConfig { ActivityTimeout = TimeSpan.FromSeconds(100) },
            });
        }

        return (routes, clusters);
    }
}
