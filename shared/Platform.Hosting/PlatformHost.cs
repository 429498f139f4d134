using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Platform.Contracts;
using Platform.Hosting.Health;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;
using Platform.Hosting.Startup;
using Platform.Hosting.Telemetry;

namespace Platform.Hosting;

/// <summary>
/// What every service host calls once: validated configuration, structured logs, telemetry, health,
/// problem details, JSON, the parts it depends on (<see cref="IPlatformHostPart"/>: its event store, its bus), and
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
        var settings = PlatformSettings.Read(builder.Configuration);
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
        services.AddHealthChecks();
        services.AddSingleton<IHealthCheckPublisher, HealthTransitions>();
        services.Configure<HealthCheckPublisherOptions>(options =>
        {
            options.Delay = TimeSpan.FromSeconds(2);
            options.Period = TimeSpan.FromSeconds(5);
            options.Predicate = check => check.Tags.Contains(HealthEndpoints.ReadyTag);
        });

        services.AddSingleton(settings);
        foreach (var part in definition.Parts)
        {
            part.Configure(builder, definition, settings);
        }

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
        foreach (var part in definition.Parts)
        {
            await part.StartAsync(app.Services, CancellationToken.None);
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
        // Dependency outages are logged once per change by HealthTransitions; every failing readiness probe would
        // otherwise repeat for as long as it lasts.
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
