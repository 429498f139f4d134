using System.Collections.Concurrent;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Platform.Testing;

namespace Platform.Services.Tests;

public sealed class TelemetryExportTests
{
    [Fact]
    public async Task A_service_exports_its_request_traces_over_otlp_when_an_endpoint_is_configured()
    {
        var received = new ConcurrentQueue<(string Path, byte[] Body)>();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var collector = builder.Build();
        collector.MapPost("/v1/{signal}", async (HttpContext context) =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            received.Enqueue((context.Request.Path, body.ToArray()));
            return Results.Ok();
        });
        await collector.StartAsync();
        var collectorAddress = collector.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        await using var environment = await ServiceEnvironment.CreateAsync();
        await using var service = ServiceProcess.Start("provisioning", environment.For(
            ("Platform__Telemetry__OtlpEndpoint", collectorAddress),
            ("OTEL_BSP_SCHEDULE_DELAY", "500"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1000")));
        await service.WaitUntilReadyAsync();
        using var client = await service.CreateGatewayLikeClientAsync();

        await client.GetAsync("/api/v1/provisioning/info");

        // The protobuf payload carries the span's strings verbatim.
        await Eventually.TrueAsync(
            () => received.Any(r => r.Path == "/v1/traces" && Contains(r.Body, "Microsoft.AspNetCore.Hosting.HttpRequestIn") && Contains(r.Body, "/api/v1/provisioning/info")),
            TimeSpan.FromSeconds(30),
            "the collector receives the request's span");
        await Eventually.TrueAsync(() => received.Any(r => r.Path == "/v1/metrics"), TimeSpan.FromSeconds(30), "the collector receives metrics");
    }

    private static bool Contains(byte[] body, string text) =>
        body.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) >= 0;
}
