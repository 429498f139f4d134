using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>A database and a virtual host of their own, and the environment a service process needs to use them.</summary>
public sealed class ServiceEnvironment : IAsyncDisposable
{
    private ServiceEnvironment(PostgresDatabase database, RabbitVirtualHost virtualHost)
    {
        Database = database;
        VirtualHost = virtualHost;
    }

    public PostgresDatabase Database { get; }

    public RabbitVirtualHost VirtualHost { get; }

    public static async Task<ServiceEnvironment> CreateAsync() =>
        new(await PostgresDatabase.CreateAsync(), await RabbitVirtualHost.CreateAsync());

    public Dictionary<string, string> For(params (string Key, string Value)[] overrides)
    {
        var environment = new Dictionary<string, string>
        {
            ["ConnectionStrings__Postgres"] = Database.ConnectionString,
            ["ConnectionStrings__RabbitMq"] = VirtualHost.ConnectionString,
        };
        foreach (var (key, value) in overrides)
        {
            environment[key] = value;
        }

        return environment;
    }

    public async ValueTask DisposeAsync()
    {
        await VirtualHost.DisposeAsync();
        await Database.DisposeAsync();
    }
}
