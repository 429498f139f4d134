using Microsoft.Extensions.Configuration;
using Platform.Hosting.Startup;

namespace Platform.Hosting;

/// <summary>The host's configuration, read and validated once at start: a wrong value stops the service with one line saying which.</summary>
public sealed record PlatformSettings(
    Uri? OtlpEndpoint,
    TimeSpan StartupTimeout,
    string? InternalToken)
{
    public const string OtlpEndpointKey = "Platform:Telemetry:OtlpEndpoint";
    public const string StartupTimeoutKey = "Platform:StartupTimeoutSeconds";
    public const string InternalTokenKey = "Platform:InternalToken";

    public static PlatformSettings Read(IConfiguration configuration)
    {
        Uri? otlp = null;
        if (configuration[OtlpEndpointKey] is { Length: > 0 } endpoint &&
            (!Uri.TryCreate(endpoint, UriKind.Absolute, out otlp) || otlp.Scheme is not ("http" or "https")))
        {
            throw new StartupException($"{OtlpEndpointKey} must be an http(s) URL such as http://127.0.0.1:4318, not '{endpoint}'.");
        }

        var timeout = configuration.GetValue(StartupTimeoutKey, 15.0);
        if (timeout is <= 0 or > 600)
        {
            throw new StartupException($"{StartupTimeoutKey} must be between 0 and 600 seconds.");
        }

        var internalToken = Required(configuration, InternalTokenKey);
        if (internalToken.Length < 32)
        {
            throw new StartupException($"{InternalTokenKey} must be at least 32 characters: it is the credential that lets the gateway call the services.");
        }

        return new PlatformSettings(otlp, TimeSpan.FromSeconds(timeout), internalToken);
    }

    /// <summary>A setting the service cannot start without; its absence stops the start with the environment variable to set.</summary>
    public static string Required(IConfiguration configuration, string key) =>
        configuration[key] is { Length: > 0 } value
            ? value
            : throw new StartupException($"{key} is not set (environment variable {key.Replace(":", "__", StringComparison.Ordinal)}).");
}
