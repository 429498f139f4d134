using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Platform.EventSourcing;
using Platform.EventSourcing.Subscriptions;

namespace Platform.Hosting;

/// <summary>What a service host is: its name, what it depends on and what it adds to the defaults.</summary>
public sealed record PlatformServiceDefinition(string Name)
{
    /// <summary>The service keeps event streams (and its inbox and sagas) in PostgreSQL, in a schema named after it.</summary>
    public bool UsesPostgres { get; init; } = true;

    /// <summary>The service sends and receives messages on RabbitMQ and relays its integration events there.</summary>
    public bool UsesRabbitMq { get; init; } = true;

    /// <summary>Only the gateway may call it (the internal credential); false for the gateway itself, the public entry point.</summary>
    public bool AnswersOnlyTheGateway { get; init; } = true;

    public string Schema => Name.Replace('-', '_');

    /// <summary>Maps the service's own (domain) event types; the contracts are mapped already.</summary>
    public Action<EventTypeRegistry>? MapEvents { get; init; }

    /// <summary>Read models kept in the appending transaction (their unique constraints guard the whole append).</summary>
    public IReadOnlyList<IProjection> InlineProjections { get; init; } = [];

    /// <summary>Extra schema migrations (read models) applied at start with the event store's.</summary>
    public IReadOnlyList<SchemaMigration> Migrations { get; init; } = [];

    /// <summary>Consumers, sagas and their endpoints.</summary>
    public Action<IBusRegistrationConfigurator>? ConfigureMessaging { get; init; }

    public Action<WebApplicationBuilder>? ConfigureServices { get; init; }

    public Action<WebApplication>? MapEndpoints { get; init; }
}
