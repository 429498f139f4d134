using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Platform.Contracts;

namespace Platform.Messaging;

public static class MessagingServiceCollectionExtensions
{
    /// <summary>
    /// The bus every service uses: RabbitMQ with publisher confirms, queues named
    /// <c>{service}-{consumer}</c>, the platform's JSON, the retry policy, and publishes from consumers
    /// held until the consumer has finished.
    /// </summary>
    public static IServiceCollection AddPlatformMessaging(
        this IServiceCollection services,
        string serviceName,
        RabbitMqAddress broker,
        Action<IBusRegistrationConfigurator>? configure = null)
    {
        services.AddMassTransit(bus =>
        {
            bus.SetEndpointNameFormatter(new KebabCaseEndpointNameFormatter(serviceName + "-", includeNamespace: false));
            configure?.Invoke(bus);
            bus.UsingRabbitMq((context, rabbit) =>
            {
                rabbit.Host(broker.Host, (ushort)broker.Port, broker.VirtualHost, host =>
                {
                    host.Username(broker.Username);
                    host.Password(broker.Password);
                    host.PublisherConfirmation = true;
                    host.ConnectionName(serviceName);
                });
                rabbit.ConfigureJsonSerializerOptions(options =>
                {
                    PlatformJson.Apply(options);
                    return options;
                });
                rabbit.UseMessageRetry(RetryPolicy.Configure);
                rabbit.UseMessageRetry(RetryPolicy.ConfigureConcurrency);
                rabbit.UseInMemoryOutbox(context);
                rabbit.ConfigureEndpoints(context);
            });
        });
        services.AddSingleton(broker);
        services.AddHostedService<BusWatchdog>();
        return services;
    }
}
