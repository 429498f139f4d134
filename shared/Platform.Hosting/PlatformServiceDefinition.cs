using Microsoft.AspNetCore.Builder;

namespace Platform.Hosting;

/// <summary>What a service host is: its name, the parts it depends on (its event store, its bus) and what it adds to the defaults.</summary>
public sealed record PlatformServiceDefinition(string Name)
{
    /// <summary>Only the gateway may call it (the internal credential); false for the gateway itself, the public entry point.</summary>
    public bool AnswersOnlyTheGateway { get; init; } = true;

    /// <summary>The service's PostgreSQL schema, named after it.</summary>
    public string Schema => Name.Replace('-', '_');

    /// <summary>Its dependencies, set up in this order and checked in this order before the service takes traffic.</summary>
    public IReadOnlyList<IPlatformHostPart> Parts { get; init; } = [];

    public Action<WebApplicationBuilder>? ConfigureServices { get; init; }

    public Action<WebApplication>? MapEndpoints { get; init; }
}

/// <summary>
/// A dependency a service host adds to the defaults, such as its event store or its bus: what it registers, and
/// what must hold before the service takes traffic. A part that cannot start throws a <see cref="Startup.StartupException"/>
/// saying why in one line.
/// </summary>
public interface IPlatformHostPart
{
    /// <summary>Reads and validates the part's configuration and registers its services.</summary>
    void Configure(WebApplicationBuilder builder, PlatformServiceDefinition definition, PlatformSettings settings);

    /// <summary>Waits, up to the startup timeout, until the dependency answers and is ready (migrated, declared).</summary>
    Task StartAsync(IServiceProvider services, CancellationToken cancellationToken);
}
