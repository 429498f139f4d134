using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Platform.Messaging;

namespace Platform.Testing;

/// <summary>A bus configured exactly as a service's (AddPlatformMessaging), on a test's own virtual host.</summary>
public sealed class TestBus : IAsyncDisposable
{
    private readonly ServiceProvider _provider;

    private TestBus(ServiceProvider provider, IBusControl bus)
    {
        _provider = provider;
        Bus = bus;
    }

    public IBusControl Bus { get; }

    public IServiceProvider Services => _provider;

    public static async Task<TestBus> StartAsync(RabbitVirtualHost virtualHost, string serviceName, Action<IServiceCollection> services, Action<IBusRegistrationConfigurator> configure)
    {
        var collection = new ServiceCollection();
        collection.AddLogging();
        services(collection);
        collection.AddPlatformMessaging(serviceName, RabbitMqAddress.Parse(virtualHost.ConnectionString), configure);
        var provider = collection.BuildServiceProvider();
        var bus = provider.GetRequiredService<IBusControl>();
        await bus.StartAsync(new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token);
        return new TestBus(provider, bus);
    }

    public async ValueTask DisposeAsync()
    {
        await Bus.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token);
        await _provider.DisposeAsync();
    }
}
