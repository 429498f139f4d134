using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.Services.Tests;

public sealed class TelemetryExportTests
{
    [Fact]
    public async Task A_service_exports_its_request_traces_over_otlp_when_an_endpoint_is_configured()
    {
        await using var collector = await OtlpCollector.StartAsync();
        await using var environment = await ServiceEnvironment.CreateAsync();
        await using var service = ServiceProcess.Start("provisioning", environment.For(
            ("Platform__Telemetry__OtlpEndpoint", collector.Endpoint.ToString()),
            ("OTEL_BSP_SCHEDULE_DELAY", "500"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1000")));
        await service.WaitUntilReadyAsync();
        using var client = await service.CreateGatewayLikeClientAsync();

        await client.GetAsync("/api/v1/provisioning/info");

        await Eventually.TrueAsync(
            () => collector.Spans.Any(s => s is { Service: "provisioning", Kind: 2 } && s.Name.Contains("/api/v1/provisioning/info", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(30),
            "the collector receives the request's server span");
        await Eventually.TrueAsync(() => collector.MetricExports > 0, TimeSpan.FromSeconds(30), "the collector receives metrics");
    }
}

/// <summary>One machine creation is one trace, from the gateway's request through the bus, the saga and every service it asks.</summary>
public sealed class MachineTraceTests(ITestOutputHelper output) : IAsyncLifetime
{
    private OtlpCollector _collector = null!;
    private PlatformStack _stack = null!;

    public async Task InitializeAsync()
    {
        _collector = await OtlpCollector.StartAsync();
        _stack = new PlatformStack(["sandbox", "simulated"])
        {
            CommonSettings = [("Platform__Telemetry__OtlpEndpoint", _collector.Endpoint.ToString()), ("OTEL_BSP_SCHEDULE_DELAY", "500")],
        };
        await _stack.InitializeAsync();
    }

    public async Task DisposeAsync()
    {
        await _stack.DisposeAsync();
        await _collector.DisposeAsync();
    }

    [Fact]
    public async Task A_machine_creation_is_one_trace_across_the_gateway_the_saga_tenancy_networking_and_the_host_agent()
    {
        using var admin = await _stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var trace = ActivityTraceId.CreateRandom().ToHexString();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/machines")
        {
            Content = JsonContent.Create(new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64 }),
        };
        request.Headers.Add("traceparent", $"00-{trace}-{ActivitySpanId.CreateRandom().ToHexString()}-01");

        using var created = await tenant.SendAsync(request);
        Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
        var machine = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        await tenant.WaitForMachineAsync(machine, "running");

        string[] services = ["gateway", "provisioning", "tenancy", "networking", "host-agent"];
        try
        {
            await Eventually.TrueAsync(() =>
            {
                var spans = _collector.Spans.Where(s => s.TraceId == trace).ToList();
                var ids = spans.Select(s => s.SpanId).ToHashSet();
                // The saga's steps: it consumes the request's event and each step's reply (quota, network, launch, registration).
                // Every span but the gateway's server span has its parent in the trace (once that parent ended and was exported).
                return services.All(service => spans.Any(s => s.Service == service))
                    && spans.Count(s => s is { Service: "provisioning", Kind: 5 }) >= 4
                    && spans.Any(s => s is { Service: "host-agent", Kind: 5 })
                    && spans.Where(s => s.Service != "gateway" || s.Kind != 2).All(s => ids.Contains(s.ParentSpanId));
            }, TimeSpan.FromSeconds(60), "every service's spans of the creation carry its trace id, each under a parent of the trace");
        }
        finally
        {
            var spans = _collector.Spans.Where(s => s.TraceId == trace).ToList();
            var ids = spans.Select(s => s.SpanId).ToHashSet();
            foreach (var span in spans)
            {
                output.WriteLine($"{span.Service,-13} kind {span.Kind} {span.Name}{(ids.Contains(span.ParentSpanId) ? "" : $" (parent {span.ParentSpanId} not in the trace)")}");
            }
        }
    }
}
