using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Platform.Hosting;
using Platform.Hosting.Health;
using Platform.Hosting.Startup;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace Platform.Messaging;

/// <summary>
/// Puts a service on the bus (<see cref="MessagingServiceCollectionExtensions.AddPlatformMessaging"/>): the broker named by
/// <c>ConnectionStrings:RabbitMq</c>, its readiness check, and before the service takes traffic, a broker that accepts the
/// credentials and holds the platform's shared topology (<see cref="PlatformTopology"/>).
/// </summary>
/// <param name="configure">The service's consumers, sagas and their endpoints.</param>
public sealed class BusHosting(Action<IBusRegistrationConfigurator>? configure = null) : IPlatformHostPart
{
    public const string RabbitMqKey = "ConnectionStrings:RabbitMq";

    public void Configure(WebApplicationBuilder builder, PlatformServiceDefinition definition, PlatformSettings settings)
    {
        RabbitMqAddress broker;
        try
        {
            broker = RabbitMqAddress.Parse(PlatformSettings.Required(builder.Configuration, RabbitMqKey));
        }
        catch (FormatException exception)
        {
            throw new StartupException($"{RabbitMqKey}: {exception.Message}");
        }

        var services = builder.Services;
        services.AddPlatformMessaging(definition.Name, broker, configure);
        services.Configure<MassTransitHostOptions>(options => options.StartTimeout = settings.StartupTimeout);
        services.AddSingleton(new RabbitMqHealthCheck(broker));
        services.AddHealthChecks().AddCheck<RabbitMqHealthCheck>("rabbitmq", tags: [HealthEndpoints.ReadyTag]);
        services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddSource("MassTransit"));
        services.ConfigureOpenTelemetryMeterProvider(metrics => metrics.AddMeter("MassTransit"));
        // Broker outages are logged once per change by the readiness check; the bus's reconnect warnings, each with a
        // stack trace, would otherwise repeat for as long as one lasts.
        builder.Logging.AddFilter("MassTransit", LogLevel.Error);
    }

    public async Task StartAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        var address = services.GetRequiredService<RabbitMqAddress>();
        var factory = new ConnectionFactory
        {
            HostName = address.Host,
            Port = address.Port,
            VirtualHost = address.VirtualHost,
            UserName = address.Username,
            Password = address.Password,
            RequestedConnectionTimeout = TimeSpan.FromSeconds(3),
        };
        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger("Platform.Hosting");
        await StartupRetry.UntilAsync(services.GetRequiredService<PlatformSettings>().StartupTimeout, $"RabbitMQ at {address}", logger, async () =>
        {
            await using var connection = await factory.CreateConnectionAsync(cancellationToken);
            await PlatformTopology.DeclareAsync(connection, cancellationToken);
        }, exception => StartupRetry.Innermost(exception) switch
        {
            AuthenticationFailureException => $"RabbitMQ at {address} refused the credentials of user '{address.Username}'",
            OperationInterruptedException interrupted when interrupted.ShutdownReason?.ReplyCode == 530 =>
                $"RabbitMQ at {address} refused access to virtual host '{address.VirtualHost}'",
            _ => null,
        });
    }
}
