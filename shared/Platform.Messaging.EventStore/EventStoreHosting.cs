using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Platform.Contracts;
using Platform.Contracts.Operations;
using Platform.EventSourcing;
using Platform.EventSourcing.Subscriptions;
using Platform.Hosting;
using Platform.Hosting.Health;
using Platform.Hosting.Problems;
using Platform.Hosting.Startup;
using Platform.Messaging.Inbox;
using Platform.Messaging.Relay;
using Platform.Messaging.Sagas;

namespace Platform.Messaging;

/// <summary>
/// Gives a service its event store in PostgreSQL (<c>ConnectionStrings:Postgres</c>), in a schema named after it, with
/// its inbox and saga rows; and, when the service is also on the bus (<see cref="BusHosting"/>), the relay of its
/// integration events. Before the service takes traffic the schema is migrated and <see cref="ServiceStarted"/> is
/// appended to <c>service-{name}</c>.
/// </summary>
public sealed class EventStoreHosting : IPlatformHostPart
{
    public const string PostgresKey = "ConnectionStrings:Postgres";

    /// <summary>Maps the service's own (domain) event types; the contracts are mapped already.</summary>
    public Action<EventTypeRegistry>? MapEvents { get; init; }

    /// <summary>Read models kept in the appending transaction (their unique constraints guard the whole append).</summary>
    public IReadOnlyList<IProjection> InlineProjections { get; init; } = [];

    /// <summary>Extra schema migrations (read models) applied at start with the event store's.</summary>
    public IReadOnlyList<SchemaMigration> Migrations { get; init; } = [];

    public void Configure(WebApplicationBuilder builder, PlatformServiceDefinition definition, PlatformSettings settings)
    {
        var postgres = ConnectionString(builder.Configuration, definition.Name);
        var services = builder.Services;
        services.AddSingleton(_ => new NpgsqlDataSourceBuilder(postgres).Build());
        services.AddSingleton(provider =>
        {
            var types = new EventTypeRegistry().MapAll(ContractsAssembly.Assembly, "Platform.Contracts.");
            MapEvents?.Invoke(types);
            return new EventStore(
                provider.GetRequiredService<NpgsqlDataSource>(),
                new EventStoreOptions { Schema = definition.Schema, Types = types, InlineProjections = InlineProjections },
                provider.GetRequiredService<TimeProvider>());
        });
        services.AddSingleton<IEventStreams>(provider => provider.GetRequiredService<EventStore>());
        services.AddSingleton<Inbox.Inbox>();
        services.AddSingleton(provider => new SagaStore(provider.GetRequiredService<NpgsqlDataSource>(), definition.Schema));
        services.AddHostedService<SubscriptionsHostedService>();
        services.AddHealthChecks().AddCheck<PostgresHealthCheck>("postgres", tags: [HealthEndpoints.ReadyTag]);
        services.AddSingleton<ExceptionProblem>(exception => exception is WrongExpectedVersionException conflict
            ? new ProblemException(ProblemTypes.ConcurrencyConflict, 409, "The resource changed since it was read.", conflict.Message)
            : null);
        services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddSource("Npgsql", EventRelay.ActivitySource.Name));
        services.ConfigureOpenTelemetryMeterProvider(metrics => metrics.AddMeter("Npgsql"));

        if (definition.Parts.OfType<BusHosting>().Any())
        {
            var retention = TimeSpan.FromDays(builder.Configuration.GetValue("Platform:Messaging:InboxRetentionDays", 7.0));
            services.AddHostedService(provider => ActivatorUtilities.CreateInstance<InboxCleanup>(provider, retention));
            services.AddSingleton(provider => CatchUpSubscription.ForSubscriber(
                provider.GetRequiredService<EventStore>(),
                new EventRelay(provider.GetRequiredService<IBus>(), definition.Name),
                logger: provider.GetRequiredService<ILoggerFactory>().CreateLogger<EventRelay>()));
        }
    }

    public async Task StartAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        var store = services.GetRequiredService<EventStore>();
        var timeout = services.GetRequiredService<PlatformSettings>().StartupTimeout;
        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger("Platform.Hosting");
        var where = PostgresHealthCheck.Endpoint(store.DataSource.ConnectionString);
        var migrations = Inbox.Inbox.Migrations.Concat(SagaStore.Migrations).Concat(Migrations).ToArray();
        await StartupRetry.UntilAsync(timeout, $"PostgreSQL at {where}", logger, async () =>
        {
            await store.MigrateAsync(cancellationToken);
            await SchemaMigrator.ApplyAsync(store.DataSource, store.Schema, migrations, cancellationToken);
        }, exception => exception is PostgresException postgres
            ? $"PostgreSQL at {where} refused: {postgres.MessageText} ({postgres.SqlState})"
            : null);

        var identity = services.GetRequiredService<ServiceIdentity>();
        await store.AppendAsync(
            $"service-{identity.Name}",
            ExpectedVersion.Any,
            [new ServiceStarted(identity.Name, identity.Version, identity.InstanceId, Environment.MachineName, identity.StartedAt)],
            new EventMetadata(Actor: $"service:{identity.Name}"),
            cancellationToken);
    }

    /// <summary>The configured connection string, checked, with the service as its application name.</summary>
    private static string ConnectionString(IConfiguration configuration, string serviceName)
    {
        try
        {
            var builder = new NpgsqlConnectionStringBuilder(PlatformSettings.Required(configuration, PostgresKey));
            if (string.IsNullOrEmpty(builder.Host) || string.IsNullOrEmpty(builder.Database))
            {
                throw new StartupException($"{PostgresKey} must name a Host and a Database.");
            }

            builder.ApplicationName ??= serviceName;
            return builder.ConnectionString;
        }
        catch (ArgumentException exception)
        {
            throw new StartupException($"{PostgresKey} is not a valid PostgreSQL connection string: {exception.Message}");
        }
    }
}
