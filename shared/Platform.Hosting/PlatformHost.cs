using System.Reflection;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Operations;
using Platform.EventSourcing;
using Platform.EventSourcing.Subscriptions;
using Platform.Hosting.Health;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;
using Platform.Hosting.Startup;
using Platform.Hosting.Telemetry;
using Platform.Messaging;
using Platform.Messaging.Inbox;
using Platform.Messaging.Relay;
using Platform.Messaging.Sagas;

namespace Platform.Hosting;

/// <summary>
/// What every service host calls once: validated configuration, structured logs, telemetry, health,
/// problem details, JSON, its event store and bus, the relay of its integration events, and
/// <c>GET /api/v1/{service}/info</c>. A service that cannot start says why in one line and exits with 2.
/// </summary>
public static class PlatformHost
{
    public const int StartupFailedExitCode = 2;

    public static async Task<int> RunAsync(string[] args, PlatformServiceDefinition definition)
    {
        using var startupLogs = LoggerFactory.Create(logging => ConfigureLogging(logging));
        var logger = startupLogs.CreateLogger("Platform.Hosting");
        try
        {
            var app = Build(args, definition);
            await StartDependenciesAsync(app, definition);
            await app.RunAsync();
            // A service may end itself to be started again (see BusWatchdog): its exit code says so.
            return Environment.ExitCode;
        }
        catch (StartupException exception)
        {
            logger.LogCritical("{Service} cannot start: {Reason}", definition.Name, exception.Message);
            return StartupFailedExitCode;
        }
    }

    private static WebApplication Build(string[] args, PlatformServiceDefinition definition)
    {
        var builder = WebApplication.CreateBuilder(args);
        var settings = PlatformSettings.Read(builder.Configuration, definition);
        var version = typeof(PlatformHost).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";
        var services = builder.Services;

        ConfigureLogging(builder.Logging);
        services.AddSingleton(TimeProvider.System);
        services.AddHttpContextAccessor();
        services.AddSingleton(new ServiceIdentity(definition.Name, version, Guid.CreateVersion7(), DateTimeOffset.UtcNow));
        services.ConfigureHttpJsonOptions(options => PlatformJson.Apply(options.SerializerOptions));
        services.AddPlatformProblemDetails();
        services.AddOpenApi(options => options.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = $"Platform {definition.Name} API";
            document.Info.Version = version;
            return Task.CompletedTask;
        }));
        services.AddPlatformTelemetry(definition.Name, version, settings.OtlpEndpoint);
        var health = services.AddHealthChecks();
        services.AddSingleton<IHealthCheckPublisher, HealthTransitions>();
        services.Configure<HealthCheckPublisherOptions>(options =>
        {
            options.Delay = TimeSpan.FromSeconds(2);
            options.Period = TimeSpan.FromSeconds(5);
            options.Predicate = check => check.Tags.Contains(HealthEndpoints.ReadyTag);
        });

        if (settings.PostgresConnectionString is { } postgres)
        {
            services.AddSingleton(_ => new NpgsqlDataSourceBuilder(postgres).Build());
            services.AddSingleton(provider =>
            {
                var types = new EventTypeRegistry().MapAll(ContractsAssembly.Assembly, "Platform.Contracts.");
                definition.MapEvents?.Invoke(types);
                return new EventStore(provider.GetRequiredService<NpgsqlDataSource>(), new EventStoreOptions { Schema = definition.Schema, Types = types, InlineProjections = definition.InlineProjections }, provider.GetRequiredService<TimeProvider>());
            });
            services.AddSingleton<IEventStreams>(provider => provider.GetRequiredService<EventStore>());
            services.AddSingleton<Inbox>();
            services.AddSingleton(provider => new SagaStore(provider.GetRequiredService<NpgsqlDataSource>(), definition.Schema));
            services.AddHostedService<SubscriptionsHostedService>();
            health.AddCheck<PostgresHealthCheck>("postgres", tags: [HealthEndpoints.ReadyTag]);
        }

        if (settings.RabbitMq is { } broker)
        {
            services.AddPlatformMessaging(definition.Name, broker, definition.ConfigureMessaging);
            services.AddSingleton(new RabbitMqHealthCheck(broker));
            health.AddCheck<RabbitMqHealthCheck>("rabbitmq", tags: [HealthEndpoints.ReadyTag]);
            services.Configure<MassTransitHostOptions>(options => options.StartTimeout = settings.StartupTimeout);
            if (settings.PostgresConnectionString is not null)
            {
                var retention = TimeSpan.FromDays(builder.Configuration.GetValue("Platform:Messaging:InboxRetentionDays", 7.0));
                services.AddHostedService(provider => ActivatorUtilities.CreateInstance<InboxCleanup>(provider, retention));
                services.AddSingleton(provider => CatchUpSubscription.ForSubscriber(
                    provider.GetRequiredService<EventStore>(),
                    new EventRelay(provider.GetRequiredService<IBus>(), definition.Name),
                    logger: provider.GetRequiredService<ILoggerFactory>().CreateLogger<EventRelay>()));
            }
        }

        services.AddSingleton(settings);
        services.AddSingleton(definition);
        definition.ConfigureServices?.Invoke(builder);

        var app = builder.Build();
        app.UseMiddleware<CorrelationMiddleware>();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        if (definition.AnswersOnlyTheGateway)
        {
            app.UseMiddleware<GatewayOnlyMiddleware>();
        }

        app.MapPlatformHealth();
        app.MapGet($"/api/v1/{definition.Name}/info", (ServiceIdentity identity, TimeProvider time) => identity.Describe(time.GetUtcNow()));
        app.MapOpenApi($"/api/v1/{definition.Name}/openapi.json");
        definition.MapEndpoints?.Invoke(app);
        return app;
    }

    private static async Task StartDependenciesAsync(WebApplication app, PlatformServiceDefinition definition)
    {
        var settings = app.Services.GetRequiredService<PlatformSettings>();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Platform.Hosting");
        if (settings.PostgresConnectionString is not null)
        {
            var migrations = Inbox.Migrations.Concat(SagaStore.Migrations).Concat(definition.Migrations).ToArray();
            await DependencyChecks.MigratePostgresAsync(app.Services.GetRequiredService<EventStore>(), migrations, settings.StartupTimeout, logger, CancellationToken.None);
        }

        if (settings.RabbitMq is { } broker)
        {
            await DependencyChecks.CheckRabbitMqAsync(broker, settings.StartupTimeout, logger, CancellationToken.None);
        }

        if (settings.PostgresConnectionString is not null)
        {
            var identity = app.Services.GetRequiredService<ServiceIdentity>();
            await app.Services.GetRequiredService<EventStore>().AppendAsync(
                $"service-{definition.Name}",
                ExpectedVersion.Any,
                [new ServiceStarted(identity.Name, identity.Version, identity.InstanceId, Environment.MachineName, identity.StartedAt)],
                new EventMetadata(Actor: $"service:{definition.Name}"));
        }
    }

    private static void ConfigureLogging(ILoggingBuilder logging)
    {
        logging.ClearProviders();
        logging.AddJsonConsole(options =>
        {
            options.UseUtcTimestamp = true;
            options.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
            // Log lines are read by people and parsers, not embedded in HTML: keep quotes and accents as they are.
            options.JsonWriterOptions = new System.Text.Json.JsonWriterOptions { Indented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        });
        logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        // Dependency outages are logged once per change by HealthTransitions; the bus's reconnect warnings
        // (each with a stack trace) and every failing readiness probe would otherwise repeat for as long as it lasts.
        logging.AddFilter("MassTransit", LogLevel.Error);
        logging.AddFilter("Microsoft.Extensions.Diagnostics.HealthChecks", LogLevel.None);
        logging.AddFilter("Microsoft.AspNetCore.Diagnostics.ExceptionHandlerMiddleware", LogLevel.None);
    }
}

/// <summary>Which service instance this is, for <c>/info</c>, logs and the ServiceStarted event.</summary>
public sealed record ServiceIdentity(string Name, string Version, Guid InstanceId, DateTimeOffset StartedAt)
{
    public ServiceInfo Describe(DateTimeOffset now) => new(Name, Version, InstanceId, StartedAt, Math.Round((now - StartedAt).TotalSeconds, 1));
}

public sealed record ServiceInfo(string Name, string Version, Guid InstanceId, DateTimeOffset StartedAt, double UptimeSeconds);
