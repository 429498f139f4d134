using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Testing;

namespace Platform.Services.Tests;

public sealed class HealthTests
{
    [Fact]
    public async Task Readiness_names_each_dependency_turns_unhealthy_while_the_broker_is_unreachable_and_recovers_with_it()
    {
        await using var environment = await ServiceEnvironment.CreateAsync();
        var broker = new Uri(environment.VirtualHost.ConnectionString);
        await using var relay = TcpRelay.Start(broker.Host, broker.Port);
        var throughRelay = new UriBuilder(broker) { Port = relay.Port }.Uri.ToString();
        await using var service = ServiceProcess.Start("provisioning", environment.For(("ConnectionStrings__RabbitMq", throughRelay)));
        using var client = new HttpClient { BaseAddress = await service.WaitUntilReadyAsync() };

        var ready = await client.GetFromJsonAsync<JsonElement>("/health/ready");
        Assert.Equal("healthy", ready.GetProperty("status").GetString());
        Assert.Equal("healthy", ready.GetProperty("checks").GetProperty("postgres").GetProperty("status").GetString());
        Assert.Equal("healthy", ready.GetProperty("checks").GetProperty("rabbitmq").GetProperty("status").GetString());
        Assert.Equal("healthy", ready.GetProperty("checks").GetProperty("masstransit-bus").GetProperty("status").GetString());

        relay.Cut();

        await Eventually.TrueAsync(async () => (await client.GetAsync("/health/ready")).StatusCode == HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(30), "readiness reports the lost broker");
        var notReady = await (await client.GetAsync("/health/ready")).Content.ReadFromJsonAsync<JsonElement>();
        var rabbit = notReady.GetProperty("checks").GetProperty("rabbitmq");
        Assert.Equal("unhealthy", rabbit.GetProperty("status").GetString());
        Assert.Contains($"RabbitMQ at amqp://127.0.0.1:{relay.Port}/", rabbit.GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.Equal("healthy", notReady.GetProperty("checks").GetProperty("postgres").GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);
        Assert.False(service.HasExited);

        relay.Restore();

        await Eventually.TrueAsync(async () => (await client.GetAsync("/health/ready")).IsSuccessStatusCode, TimeSpan.FromSeconds(60), "readiness recovers with the broker");
    }
}
