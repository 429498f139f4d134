using Microsoft.Extensions.Configuration;
using Npgsql;
using Platform.Hosting.Startup;
using Platform.Messaging;

namespace Platform.Hosting;

/// <summary>The host's configuration, read and validated once at start: a wrong value stops the service with one line saying which.</summary>
public sealed record PlatformSettings(
    string? PostgresConnectionString,
    RabbitMqAddress? RabbitMq,
    Uri? OtlpEndpoint,
    TimeSpan StartupTimeout,
    string? InternalToken)
{
    public const string PostgresKey = "ConnectionStrings:Postgres";
    public const string RabbitMqKey = "ConnectionStrings:RabbitMq";
    public const string OtlpEndpointKey = "Platform:Telemetry:OtlpEndpoint";
    public const string StartupTimeoutKey = "Platform:StartupTimeoutSeconds";
    public const string InternalTokenKey = "Platform:InternalToken";

    public static PlatformSettings Read(IConfiguration configuration, PlatformServiceDefinition definition)
    {
        string? postgres = null;
        if (definition.UsesPostgres)
        {
            postgres = Required(configuration, PostgresKey);
            try
            {
                var builder = new NpgsqlConnectionStringBuilder(postgres);
                if (string.IsNullOrEmpty(builder.Host) || string.IsNullOrEmpty(builder.Database))
                {
                    throw new StartupException($"{PostgresKey} must name a Host and a Database.");
                }

                builder.ApplicationName ??= definition.Name;
                postgres = builder.ConnectionString;
            }
            catch (ArgumentException exception)
            {
                throw new StartupException($"{PostgresKey} is not a valid PostgreSQL connection string: {exception.Message}");
            }
        }

        RabbitMqAddress? rabbit = null;
        if (definition.UsesRabbitMq)
        {
            try
            {
                rabbit = RabbitMqAddress.Parse(Required(configuration, RabbitMqKey));
            }
            catch (FormatException exception)
            {
                throw new StartupException($"{RabbitMqKey}: {exception.Message}");
            }
        }

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

        return new PlatformSettings(postgres, rabbit, otlp, TimeSpan.FromSeconds(timeout), internalToken);
    }

    private static string Required(IConfiguration configuration, string key) =>
        configuration[key] is { Length: > 0 } value
            ? value
            : throw new StartupException($"{key} is not set (environment variable {key.Replace(":", "__", StringComparison.Ordinal)}).");
}
