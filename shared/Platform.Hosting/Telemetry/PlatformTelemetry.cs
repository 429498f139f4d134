using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Platform.Hosting.Telemetry;

/// <summary>
/// Traces and metrics of a service (OpenTelemetry.Extensions.Hosting): ASP.NET Core and HttpClient through their
/// instrumentation packages, YARP and the platform's own sources (host parts add theirs: MassTransit, Npgsql, the relay), exported over OTLP
/// (HTTP/protobuf) when an endpoint is configured; otherwise nothing is collected.
/// </summary>
public static class PlatformTelemetry
{
    public const string SourceName = "Platform";

    public static readonly ActivitySource ActivitySource = new(SourceName);

    public static readonly Meter Meter = new(SourceName);

    private static readonly string[] ActivitySources = ["Yarp.ReverseProxy", SourceName];

    private static readonly string[] Meters = [SourceName];

    internal static void AddPlatformTelemetry(this IServiceCollection services, string serviceName, string version, Uri? otlpEndpoint)
    {
        if (otlpEndpoint is null)
        {
            return;
        }

        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(serviceName, serviceNamespace: "platform", serviceVersion: version, serviceInstanceId: Environment.MachineName + "-" + Environment.ProcessId))
            .WithTracing(tracing => tracing
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddSource(ActivitySources)
                .AddOtlpExporter(options => Export(options, otlpEndpoint, "v1/traces")))
            .WithMetrics(metrics => metrics
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddMeter(Meters)
                .AddOtlpExporter(options => Export(options, otlpEndpoint, "v1/metrics")));
    }

    /// <summary>OTLP over HTTP/protobuf: the signal's path under the collector's base URL.</summary>
    private static void Export(OtlpExporterOptions options, Uri collector, string signalPath)
    {
        options.Protocol = OtlpExportProtocol.HttpProtobuf;
        options.Endpoint = new Uri(collector, signalPath);
    }
}
