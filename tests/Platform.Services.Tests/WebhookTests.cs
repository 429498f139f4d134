using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Platform.Hosting.Security;
using Platform.Testing;

namespace Platform.Services.Tests;

[Collection(StackCollection.Name)]
public sealed class WebhookTests(PlatformStack stack)
{
    [Fact]
    public async Task A_receiver_that_is_down_for_a_while_gets_every_event_in_order_signed_and_only_its_tenants()
    {
        using var admin = await stack.AdminAsync();
        var (tenant, tenantAdmin) = await admin.CreateTenantWithAdminAsync();
        var (otherTenant, otherAdmin) = await admin.CreateTenantWithAdminAsync();
        await using var receiver = await WebhookReceiver.StartAsync();
        var (subscription, secret) = await SubscribeAsync(tenantAdmin, receiver, ["UserCreated"]);

        receiver.FailNext(3);
        var expected = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            expected.Add(await CreateUserAsync(tenantAdmin, tenant));
        }

        await CreateUserAsync(otherAdmin, otherTenant);
        await Eventually.TrueAsync(() => receiver.Accepted.Count >= expected.Count, TimeSpan.FromSeconds(60), "every event is delivered once the receiver is back");
        await Task.Delay(500);

        Assert.True(receiver.Deliveries.Count(d => !d.Accepted) >= 3, "the receiver refused deliveries first");
        var accepted = receiver.Accepted.Select(Parse).ToArray();
        Assert.Equal(expected, accepted.Select(p => p.Payload.GetProperty("data").GetProperty("username").GetString()));
        Assert.All(accepted, p => Assert.Equal(tenant, p.Payload.GetProperty("tenantId").GetGuid()));
        Assert.All(receiver.Deliveries, d => Assert.Equal(Sign(secret, d.Timestamp, d.Body), d.Signature));
        Assert.True(await DocumentedVerificationAcceptsAsync(secret, receiver.Accepted[0]), "the documented verification accepts a real delivery");
        Assert.False(await DocumentedVerificationAcceptsAsync("not-the-secret-at-all", receiver.Accepted[0]), "and refuses it with another secret");
        Assert.All(accepted, p => Assert.Equal(p.Delivery.EventId, p.Payload.GetProperty("eventId").GetString()));
        var status = await tenantAdmin.GetFromJsonAsync<JsonElement>($"/api/v1/subscriptions/{subscription}");
        Assert.Equal(accepted[^1].Payload.GetProperty("position").GetInt64(), status.GetProperty("deliveredThrough").GetInt64());
    }

    [Fact]
    public async Task Events_a_receiver_keeps_refusing_are_dead_lettered_then_redelivered_on_demand_and_replay_resends_from_a_position()
    {
        using var admin = await stack.AdminAsync();
        var (tenant, tenantAdmin) = await admin.CreateTenantWithAdminAsync();
        await using var receiver = await WebhookReceiver.StartAsync();
        var (subscription, _) = await SubscribeAsync(tenantAdmin, receiver, ["UserCreated"]);
        receiver.AlwaysFail = true;

        var users = new[] { await CreateUserAsync(tenantAdmin, tenant), await CreateUserAsync(tenantAdmin, tenant) };
        await Eventually.TrueAsync(async () => (await DeadLettersAsync(tenantAdmin, subscription)).Count == 2, TimeSpan.FromSeconds(60), "both events are dead-lettered");
        Assert.Empty(receiver.Accepted);
        Assert.All(await DeadLettersAsync(tenantAdmin, subscription), d => Assert.Equal(6, d.GetProperty("attempts").GetInt32()));

        receiver.AlwaysFail = false;
        var redeliver = await tenantAdmin.PostAsync($"/api/v1/subscriptions/{subscription}/dead-letters/redeliver", null);
        Assert.Equal(HttpStatusCode.Accepted, redeliver.StatusCode);
        await Eventually.TrueAsync(() => receiver.Accepted.Count == 2, TimeSpan.FromSeconds(30), "the dead letters are delivered on demand");
        await Eventually.TrueAsync(async () => (await DeadLettersAsync(tenantAdmin, subscription)).Count == 0, TimeSpan.FromSeconds(30), "delivered dead letters leave the list");
        Assert.Equal(users, receiver.Accepted.Select(d => Parse(d).Payload.GetProperty("data").GetProperty("username").GetString()));

        var first = Parse(receiver.Accepted[0]).Payload.GetProperty("position").GetInt64();
        var replay = await tenantAdmin.PostAsync($"/api/v1/subscriptions/{subscription}/replay?from={first}", null);
        Assert.Equal(HttpStatusCode.Accepted, replay.StatusCode);
        await Eventually.TrueAsync(() => receiver.Accepted.Count == 4, TimeSpan.FromSeconds(30), "replay sends both events again");
        Assert.Equal(receiver.Accepted.Take(2).Select(d => d.EventId), receiver.Accepted.Skip(2).Select(d => d.EventId));
    }

    [Fact]
    public async Task Bad_subscriptions_are_refused_with_the_field_named_and_nothing_is_created()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenantAdmin) = await admin.CreateTenantWithAdminAsync();
        await using var receiver = await WebhookReceiver.StartAsync();
        var before = (await tenantAdmin.GetFromJsonAsync<JsonElement>("/api/v1/subscriptions")).GetArrayLength();

        foreach (var (body, field) in new (object Body, string Field)[]
        {
            (new { url = "ftp://example.org/hook" }, "url"),
            (new { url = "http://no-such-host.invalid/hook" }, "url"),
            (new { url = "http://127.0.0.1:9/hook" }, "url"),
            (new { url = "http://user:pass@127.0.0.1/hook" }, "url"),
            (new { url = receiver.Url.ToString(), eventTypes = new[] { "NoSuchEvent" } }, "eventTypes"),
            (new { url = receiver.Url.ToString(), secret = "short" }, "secret"),
        })
        {
            var problem = await Problems.AssertAsync(await tenantAdmin.PostAsJsonAsync("/api/v1/subscriptions", body), HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
            Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), $"{JsonSerializer.Serialize(body)} names {field}");
        }

        var (subscription, _) = await SubscribeAsync(tenantAdmin, receiver, null);
        await Problems.AssertAsync(await tenantAdmin.PostAsync($"/api/v1/subscriptions/{subscription}/replay?from=abc", null), HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        Assert.Equal(before + 1, (await tenantAdmin.GetFromJsonAsync<JsonElement>("/api/v1/subscriptions")).GetArrayLength());
    }

    [Fact]
    public async Task Where_https_is_required_a_plain_http_webhook_is_refused()
    {
        await using var strict = ServiceProcess.Start("telemetry", stack.Environment.For());
        await strict.WaitUntilReadyAsync();
        using var client = await strict.CreateGatewayLikeClientAsync();
        client.DefaultRequestHeaders.Add(IdentityHeaders.Subject, "user:" + Guid.NewGuid());
        client.DefaultRequestHeaders.Add(IdentityHeaders.Role, Roles.TenantAdmin);
        client.DefaultRequestHeaders.Add(IdentityHeaders.TenantId, Guid.NewGuid().ToString());
        await using var receiver = await WebhookReceiver.StartAsync();

        var problem = await Problems.AssertAsync(await client.PostAsJsonAsync("/api/v1/subscriptions", new { url = receiver.Url.ToString() }), HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");

        Assert.Contains("https", problem.GetProperty("errors").GetProperty("url")[0].GetString(), StringComparison.Ordinal);
    }

    internal static async Task<(Guid Id, string Secret)> SubscribeAsync(HttpClient client, WebhookReceiver receiver, string[]? eventTypes)
    {
        var response = await client.PostAsJsonAsync("/api/v1/subscriptions", new { url = receiver.Url.ToString(), eventTypes });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        return (body.GetProperty("id").GetGuid(), body.GetProperty("secret").GetString()!);
    }

    private static async Task<string> CreateUserAsync(HttpClient tenantAdmin, Guid tenant)
    {
        var username = $"hook-{Guid.NewGuid():N}"[..20];
        var response = await tenantAdmin.PostAsJsonAsync($"/api/v1/tenants/{tenant}/users", new { username, password = "correct horse battery staple", role = Roles.Viewer });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return username;
    }

    private static async Task<IReadOnlyList<JsonElement>> DeadLettersAsync(HttpClient client, Guid subscription) =>
        (await client.GetFromJsonAsync<JsonElement>($"/api/v1/subscriptions/{subscription}/dead-letters")).EnumerateArray().ToArray();

    private static (WebhookReceiver.Delivery Delivery, JsonElement Payload) Parse(WebhookReceiver.Delivery delivery) =>
        (delivery, JsonDocument.Parse(delivery.Body).RootElement);

    /// <summary>Runs the Python verification from docs/api/webhooks.md on a delivery, as a receiver would.</summary>
    private static async Task<bool> DocumentedVerificationAcceptsAsync(string secret, WebhookReceiver.Delivery delivery)
    {
        var text = await File.ReadAllTextAsync(Path.Combine(RepositoryRoot.Path, "docs", "api", "webhooks.md"));
        var function = System.Text.RegularExpressions.Regex.Match(text, "<!-- example: verify-signature -->\\s*```python\\n(.*?)```", System.Text.RegularExpressions.RegexOptions.Singleline).Groups[1].Value;
        Assert.False(string.IsNullOrEmpty(function), "docs/api/webhooks.md has the verification example");
        var script = function + "\nimport os, sys\nprint(verify(os.environ['SECRET'], os.environ['TIMESTAMP'], sys.stdin.buffer.read(), os.environ['SIGNATURE']))\n";
        var start = new System.Diagnostics.ProcessStartInfo("/usr/bin/python3", ["-c", script])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            Environment = { ["SECRET"] = secret, ["TIMESTAMP"] = delivery.Timestamp, ["SIGNATURE"] = delivery.Signature },
        };
        using var python = System.Diagnostics.Process.Start(start)!;
        await python.StandardInput.BaseStream.WriteAsync(delivery.Body);
        python.StandardInput.Close();
        var output = (await python.StandardOutput.ReadToEndAsync()).Trim();
        await python.WaitForExitAsync();
        return output == "True";
    }

    /// <summary>The verification a receiver does (docs/api/webhooks.md), written independently of the platform's code.</summary>
    private static string Sign(string secret, string timestamp, byte[] body)
    {
        using var hmac = new HMACSHA256(Encoding.UTF8.GetBytes(secret));
        return "sha256=" + Convert.ToHexString(hmac.ComputeHash([.. Encoding.UTF8.GetBytes(timestamp + "."), .. body])).ToLowerInvariant();
    }
}
