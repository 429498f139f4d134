using System.Net.Http.Headers;
using System.Text;

namespace Platform.Testing;

/// <summary>A RabbitMQ virtual host of its own for one test, created and deleted through the management API.</summary>
public sealed class RabbitVirtualHost : IAsyncDisposable
{
    private readonly HttpClient _management;

    private RabbitVirtualHost(string name, HttpClient management)
    {
        Name = name;
        _management = management;
    }

    public string Name { get; }

    /// <summary>The AMQP URI of this virtual host, with the test run's credentials.</summary>
    public string ConnectionString => new UriBuilder(TestEnvironment.RabbitMq) { Path = "/" + Name }.Uri.ToString();

    public static async Task<RabbitVirtualHost> CreateAsync()
    {
        var name = "t-" + Guid.NewGuid().ToString("N")[..12];
        var management = CreateManagementClient();
        (await management.PutAsync($"api/vhosts/{name}", Json("{}"))).EnsureSuccessStatusCode();
        var user = new Uri(TestEnvironment.RabbitMqManagement).UserInfo.Split(':')[0];
        (await management.PutAsync($"api/permissions/{name}/{user}", Json("""{"configure":".*","write":".*","read":".*"}"""))).EnsureSuccessStatusCode();
        return new RabbitVirtualHost(name, management);
    }

    /// <summary>The names of the queues declared in this virtual host.</summary>
    public async Task<IReadOnlyList<string>> QueueNamesAsync()
    {
        var json = await _management.GetStringAsync($"api/queues/{Name}?columns=name");
        using var document = System.Text.Json.JsonDocument.Parse(json);
        return document.RootElement.EnumerateArray().Select(q => q.GetProperty("name").GetString()!).ToArray();
    }

    /// <summary>Each queue with its ready and unacknowledged messages and its consumers: what to look at when messages stop flowing.</summary>
    public async Task<string> QueueStatsAsync()
    {
        var json = await _management.GetStringAsync($"api/queues/{Name}?columns=name,messages_ready,messages_unacknowledged,consumers");
        using var document = System.Text.Json.JsonDocument.Parse(json);
        return string.Join("\n", document.RootElement.EnumerateArray().Select(q =>
            $"{q.GetProperty("name").GetString()}: ready {q.GetProperty("messages_ready")}, unacked {q.GetProperty("messages_unacknowledged")}, consumers {q.GetProperty("consumers")}"));
    }

    /// <summary>The broker closes every client connection of this virtual host, as it does when it restarts: clients must reconnect.</summary>
    public async Task<int> CloseConnectionsAsync()
    {
        var json = await _management.GetStringAsync($"api/vhosts/{Name}/connections?columns=name");
        using var document = System.Text.Json.JsonDocument.Parse(json);
        var names = document.RootElement.EnumerateArray().Select(c => c.GetProperty("name").GetString()!).ToArray();
        foreach (var name in names)
        {
            using var request = new HttpRequestMessage(HttpMethod.Delete, $"api/connections/{Uri.EscapeDataString(name)}");
            request.Headers.Add("X-Reason", "the broker restarts (chaos test)");
            await _management.SendAsync(request);
        }

        return names.Length;
    }

    public async ValueTask DisposeAsync()
    {
        using (_management)
        {
            await _management.DeleteAsync($"api/vhosts/{Name}");
        }
    }

    private static HttpClient CreateManagementClient()
    {
        var uri = new Uri(TestEnvironment.RabbitMqManagement);
        var client = new HttpClient { BaseAddress = new Uri($"{uri.Scheme}://{uri.Host}:{uri.Port}/") };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(Uri.UnescapeDataString(uri.UserInfo))));
        return client;
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");
}
