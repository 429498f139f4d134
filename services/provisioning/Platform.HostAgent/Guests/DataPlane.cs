using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace Platform.HostAgent.Guests;

/// <summary>
/// Where provisioning reaches this agent's data plane: <see cref="AgentOptions.DataPlaneUrl"/> when set, else the one
/// concrete http address the agent listens on (known once it listens: a configured port 0 is bound later).
/// </summary>
public sealed class DataPlane(AgentOptions options, IServer server)
{
    public string? Url => options.DataPlaneUrl ?? UrlOf(server.Features.Get<IServerAddressesFeature>()?.Addresses ?? []);

    public static string? UrlOf(IEnumerable<string> addresses)
    {
        var candidates = addresses
            .Where(a => Uri.TryCreate(a, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.Port > 0
                && uri.Host is not ("+" or "*" or "0.0.0.0" or "[::]" or "::"))
            .ToList();
        return candidates.Count == 1 ? candidates[0].TrimEnd('/') : null;
    }
}
