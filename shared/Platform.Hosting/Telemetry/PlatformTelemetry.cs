using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Platform.Hosting.Telemetry;

/// <summary>
/// Traces and metrics of a service: ASP.NET Core, MassTransit, Npgsql, HttpClient and the platform's own
/// sources, exported over OTLP (HTTP/protobuf) when an endpoint is configured; otherwise nothing is collected.
/// </summary>
public static class PlatformTelemetry
{
    public const string SourceName = "Platform";

    public static readonly ActivitySource ActivitySource = new(SourceName);

    public static readonly Meter Meter = new(SourceName);

    private static readonly string[] ActivitySources = ["Microsoft.AspNetCore", "MassTransit", "Npgsql", "System.Net.Http", "Yarp.ReverseProxy", SourceName];

    private static readonly string[] Meters = ["Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel", "MassTransit", "Npgsql", "System.Net.Http", SourceName];

    internal static void AddPlatformTelemetry(this IServiceCollection services, string serviceName, string version, Uri? otlpEndpoint)
    {
        if (otlpEndpoint is null)
        {
            return;
        }

        // Without the OpenTelemetry instrumentation packages (absent here), ASP.NET Core adds the semantic-convention
        // tags (method, route, path, status) to its request activity itself when asked to.
        AppContext.SetSwitch("Microsoft.AspNetCore.Hosting.SuppressActivityOpenTelemetryData", false);
        var resource = ResourceBuilder.CreateDefault().AddService(serviceName, serviceNamespace: "platform", serviceVersion: version, serviceInstanceId: Environment.MachineName + "-" + Environment.ProcessId);
        services.AddSingleton(_ => Sdk.CreateTracerProviderBuilder()
            .SetResourceBuilder(resource)
            .AddSource(ActivitySources)
            .AddOtlpExporter(options => Export(options, otlpEndpoint, "v1/traces"))
            .Build());
        services.AddSingleton(_ => Sdk.CreateMeterProviderBuilder()
            .SetResourceBuilder(resource)
            .AddMeter(Meters)
            .AddOtlpExporter(options => Export(options, otlpEndpoint, "v1/metrics"))
            .Build());
    }

    /// <summary>OTLP over HTTP/protobuf: the signal's path under the collector's base URL.</summary>
    private static void Export(OtlpExporterOptions options, Uri collector, string signalPath)
    {
        options.Protocol = OtlpExportProtocol.HttpProtobuf;
        options.Endpoint = new Uri(collector, signalPath);
    }

    /// <summary>Builds the providers now, so that listeners exist before the first request.</summary>
    internal static void StartPlatformTelemetry(this IServiceProvider services)
    {
        services.GetService<TracerProvider>();
        services.GetService<MeterProvider>();
    }
}
