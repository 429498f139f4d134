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
        // Tenancy has consumers, so the bus holds receive endpoints that must reconnect too.
        await using var service = ServiceProcess.Start("tenancy", environment.For(("ConnectionStrings__RabbitMq", throughRelay)));
        using var client = new HttpClient { BaseAddress = await service.WaitUntilReadyAsync() };

        var ready = await client.GetFromJsonAsync<JsonElement>("/health/ready");
        Assert.Equal("healthy", ready.GetProperty("status").GetString());
        Assert.Equal("healthy", ready.GetProperty("checks").GetProperty("postgres").GetProperty("status").GetString());
        Assert.Equal("healthy", ready.GetProperty("checks").GetProperty("rabbitmq").GetProperty("status").GetString());
        Assert.Equal("healthy", ready.GetProperty("checks").GetProperty("masstransit-bus").GetProperty("status").GetString());
        // The outage starts once the service has published what it appends at its start (ServiceStarted): a publish the
        // cut interrupts is the bus's own fault report, with its stack trace, not an outage's.
        await Eventually.TrueAsync(async () => await UnrelayedAsync(environment) == 0, TimeSpan.FromSeconds(30), "the service's start is relayed");

        relay.Cut();

        await Eventually.TrueAsync(async () => (await client.GetAsync("/health/ready")).StatusCode == HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(30), "readiness reports the lost broker");
        var notReady = await (await client.GetAsync("/health/ready")).Content.ReadFromJsonAsync<JsonElement>();
        var rabbit = notReady.GetProperty("checks").GetProperty("rabbitmq");
        Assert.Equal("unhealthy", rabbit.GetProperty("status").GetString());
        Assert.Contains($"RabbitMQ at amqp://127.0.0.1:{relay.Port}/", rabbit.GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.Equal("healthy", notReady.GetProperty("checks").GetProperty("postgres").GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);
        Assert.False(service.HasExited);
        var linesBeforeOutageEnds = service.Output.Count;
        await Task.Delay(TimeSpan.FromSeconds(10));
        var outageLines = service.Output.Skip(linesBeforeOutageEnds).ToArray();
        var traced = service.Output.FirstOrDefault(line => line.Contains("   at ", StringComparison.Ordinal));
        Assert.True(traced is null, $"an outage is logged without a stack trace: {traced}");
        Assert.True(outageLines.Length <= 3, $"a broker outage is reported, not looped on: {outageLines.Length} lines in 10 s");
        Assert.Contains(service.Output, line => line.Contains("\"Warning\"", StringComparison.Ordinal) && line.Contains("rabbitmq is unhealthy: RabbitMQ at amqp://127.0.0.1:", StringComparison.Ordinal));

        relay.Restore();

        await Eventually.TrueAsync(async () => (await client.GetAsync("/health/ready")).IsSuccessStatusCode, TimeSpan.FromSeconds(60), "readiness recovers with the broker");
        await Eventually.TrueAsync(() => service.Output.Any(line => line.Contains("rabbitmq is healthy again", StringComparison.Ordinal)), TimeSpan.FromSeconds(30), "the recovery is logged once");
    }

    /// <summary>How many of the service's events its relay has not published yet: past its checkpoint, in its schema.</summary>
    private static async Task<long> UnrelayedAsync(ServiceEnvironment environment)
    {
        await using var connection = new Npgsql.NpgsqlConnection(environment.Database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand(
            "SELECT count(*) FROM tenancy.mt_events WHERE seq_id > COALESCE((SELECT position FROM tenancy.checkpoints WHERE name = 'relay'), 0)", connection);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
