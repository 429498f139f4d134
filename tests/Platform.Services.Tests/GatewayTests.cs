using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Testing;

namespace Platform.Services.Tests;

public sealed class GatewayTests
{
    private static readonly string[] Services = ["provisioning", "networking", "tenancy", "telemetry"];

    [Fact]
    public async Task Every_service_answers_its_info_through_the_gateway_and_records_that_it_started()
    {
        await using var environment = await ServiceEnvironment.CreateAsync();
        var services = Services.Select(name => ServiceProcess.Start(name, environment.For())).ToArray();
        await using var _ = new DisposeAll(services);
        var addresses = await Task.WhenAll(services.Select(s => s.WaitUntilReadyAsync()));
        await using var gateway = StartGateway(Services.Zip(addresses));
        using var client = new HttpClient { BaseAddress = await gateway.WaitUntilReadyAsync() };

        foreach (var name in Services)
        {
            var response = await client.GetAsync($"/api/v1/{name}/info");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var info = await response.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal(name, info.GetProperty("name").GetString());
            Assert.Equal("0.1.0", info.GetProperty("version").GetString());
            Assert.True(info.GetProperty("uptimeSeconds").GetDouble() >= 0);
            Assert.Equal(1L, await environment.Database.ScalarAsync<long>($"SELECT count(*) FROM {name}.mt_events WHERE type = 'ServiceStarted'"));
        }
    }

    [Fact]
    public async Task Anonymous_requests_and_a_stopped_service_answer_problem_details_through_the_gateway()
    {
        await using var environment = await ServiceEnvironment.CreateAsync();
        await using var provisioning = ServiceProcess.Start("provisioning", environment.For());
        var provisioningAddress = await provisioning.WaitUntilReadyAsync();
        // The other services are configured at an address where nothing listens.
        var nowhere = new Uri("http://127.0.0.1:9");
        await using var gateway = StartGateway(Services.Select(name => (name, name == "provisioning" ? provisioningAddress : nowhere)));
        using var client = new HttpClient { BaseAddress = await gateway.WaitUntilReadyAsync() };

        // Without a token nothing but the public routes answers: which routes exist is not revealed either.
        var anonymous = await client.GetAsync("/api/v1/provisioning/no-such-thing");
        var stopped = await client.GetAsync("/api/v1/tenancy/info");

        await Problems.AssertAsync(anonymous, HttpStatusCode.Unauthorized, "urn:platform:problem:unauthorized");
        Assert.Equal("Bearer", anonymous.Headers.WwwAuthenticate.ToString());
        await Problems.AssertAsync(stopped, HttpStatusCode.BadGateway, "urn:platform:problem:bad-gateway");
    }

    [Fact]
    public async Task A_gateway_without_the_address_of_a_service_refuses_to_start_and_says_which()
    {
        await using var gateway = ServiceProcess.Start("gateway", new Dictionary<string, string>
        {
            ["Platform__Gateway__Services__provisioning"] = "http://127.0.0.1:9",
        });

        Assert.Equal(2, await gateway.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        var critical = Assert.Single(gateway.Output, line => line.Contains("\"Critical\"", StringComparison.Ordinal));
        Assert.Contains("Platform:Gateway:Services:networking is not set", critical, StringComparison.Ordinal);
    }

    internal static ServiceProcess StartGateway(IEnumerable<(string Name, Uri Address)> services, params (string Key, string Value)[] settings) =>
        ServiceProcess.Start("gateway", services
            .Select(s => ($"Platform__Gateway__Services__{s.Name}", s.Address.ToString()))
            .Concat(settings)
            .ToDictionary(s => s.Item1, s => s.Item2));

}
