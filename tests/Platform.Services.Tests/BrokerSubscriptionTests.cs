using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>
/// Subscriptions of kind amqp against the real broker, read with pika (no .NET): a tenant's queue gets its events and no
/// other tenant's, and its credentials can do nothing but read it.
/// </summary>
[Collection(StackCollection.Name)]
public sealed class BrokerSubscriptionTests(PlatformStack stack)
{
    /// <summary>Each attempt on a channel of its own; prints the attempt and the broker's reply code (0 when it was allowed).</summary>
    private const string Attempts = """
        import os, pika
        from pika.exceptions import ChannelClosedByBroker
        connection = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))
        def attempt(name, action):
            channel = connection.channel()
            try:
                action(channel)
                print(name, 0, flush=True)
            except ChannelClosedByBroker as e:
                print(name, e.reply_code, e.reply_text.split(" ")[0], flush=True)
        attempt("publish_to_events", lambda c: (c.confirm_delivery(), c.basic_publish("Platform.Contracts:IIntegrationEvent", "", b"{}")))
        attempt("publish_default", lambda c: (c.confirm_delivery(), c.basic_publish("", os.environ["AMQP_QUEUE"], b"{}")))
        attempt("consume_other", lambda c: c.basic_consume(os.environ["OTHER_QUEUE"], lambda *a: None))
        attempt("get_other", lambda c: c.basic_get(os.environ["OTHER_QUEUE"]))
        attempt("declare", lambda c: c.queue_declare("mine-" + os.environ["AMQP_QUEUE"]))
        attempt("bind", lambda c: c.queue_bind(os.environ["AMQP_QUEUE"], "Platform.Contracts:IIntegrationEvent"))
        attempt("read_own", lambda c: c.basic_get(os.environ["AMQP_QUEUE"], auto_ack=False))
        connection.close()
        """;

    [Fact]
    public async Task A_tenants_amqp_subscription_receives_its_events_and_no_other_tenants_and_can_only_read_its_own_queue()
    {
        using var admin = await stack.AdminAsync();
        var (tenantA, clientA) = await admin.CreateTenantWithAdminAsync();
        var (tenantB, clientB) = await admin.CreateTenantWithAdminAsync();
        using var disposeA = clientA;
        using var disposeB = clientB;
        var subscriptionA = await clientA.CreateAmqpSubscriptionAsync();
        var subscriptionB = await clientB.CreateAmqpSubscriptionAsync();
        try
        {
            var keyA = await clientA.CreateApiKeyAsync(new { name = "for-a", role = "viewer" });
            var keyB = await clientB.CreateApiKeyAsync(new { name = "for-b", role = "viewer" });
            await WaitForAuditAsync(clientA, keyA.Id);
            await WaitForAuditAsync(clientB, keyB.Id);

            var lines = await EventsDocumentationTests.RunConsumerAsync(subscriptionA);

            Assert.Contains(lines, line => line.StartsWith("ApiKeyCreated ", StringComparison.Ordinal) && line.EndsWith($" {tenantA}", StringComparison.Ordinal));
            Assert.All(lines, line => Assert.EndsWith($" {tenantA}", line, StringComparison.Ordinal));
            Assert.DoesNotContain(lines, line => line.Contains(tenantB.ToString(), StringComparison.Ordinal));

            var refusals = (await Pika.RunAsync(Attempts, subscriptionA, TimeSpan.FromSeconds(60), new Dictionary<string, string> { ["OTHER_QUEUE"] = subscriptionB.Queue }))
                .Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')).ToDictionary(p => p[0], p => p[1..]);
            foreach (var name in new[] { "publish_to_events", "publish_default", "consume_other", "get_other", "declare", "bind" })
            {
                Assert.Equal(["403", "ACCESS_REFUSED"], refusals[name]);
            }

            Assert.Equal(["0"], refusals["read_own"]);
        }
        finally
        {
            Assert.Equal(HttpStatusCode.NoContent, (await clientA.DeleteAsync($"/api/v1/subscriptions/{subscriptionA.Id}")).StatusCode);
            Assert.Equal(HttpStatusCode.NoContent, (await clientB.DeleteAsync($"/api/v1/subscriptions/{subscriptionB.Id}")).StatusCode);
        }

        // Deleted: the credentials open nothing any more, and the subscription is gone for its tenant.
        var login = await Assert.ThrowsAnyAsync<Xunit.Sdk.XunitException>(() => EventsDocumentationTests.RunConsumerAsync(subscriptionA));
        Assert.Contains("ProbableAuthenticationError", login.Message, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await clientA.GetAsync($"/api/v1/subscriptions/{subscriptionA.Id}")).StatusCode);
    }

    [Fact]
    public async Task An_amqp_subscription_shows_its_password_once_is_listed_with_its_kind_and_is_invisible_to_another_tenant()
    {
        using var admin = await stack.AdminAsync();
        var (_, clientA) = await admin.CreateTenantWithAdminAsync();
        var (_, clientB) = await admin.CreateTenantWithAdminAsync();
        using var disposeA = clientA;
        using var disposeB = clientB;
        var created = await clientA.PostAsJsonAsync("/api/v1/subscriptions", new { kind = "amqp" });
        var body = await created.Content.ReadFromJsonAsync<JsonElement>();
        var id = body.GetProperty("id").GetGuid();
        try
        {
            var password = body.GetProperty("amqp").GetProperty("password").GetString()!;
            Assert.Contains($":{password}@", body.GetProperty("amqp").GetProperty("url").GetString(), StringComparison.Ordinal);
            var shown = await clientA.GetStringAsync($"/api/v1/subscriptions/{id}");
            var listed = await clientA.GetFromJsonAsync<JsonElement>("/api/v1/subscriptions");

            Assert.DoesNotContain(password, shown, StringComparison.Ordinal);
            Assert.Equal("amqp", JsonDocument.Parse(shown).RootElement.GetProperty("kind").GetString());
            Assert.Contains(listed.EnumerateArray(), s => s.GetProperty("id").GetGuid() == id && s.GetProperty("kind").GetString() == "amqp");
            Assert.Equal(HttpStatusCode.NotFound, (await clientB.GetAsync($"/api/v1/subscriptions/{id}")).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await clientB.DeleteAsync($"/api/v1/subscriptions/{id}")).StatusCode);
            Assert.DoesNotContain((await clientB.GetFromJsonAsync<JsonElement>("/api/v1/subscriptions")).EnumerateArray(), s => s.GetProperty("id").GetGuid() == id);
            var problem0 = await Problems.AssertAsync(await clientA.PostAsJsonAsync("/api/v1/subscriptions", new { kind = "amqp", url = "http://example.com/" }), HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
            Assert.True(problem0.GetProperty("errors").TryGetProperty("kind", out _));
            var problem1 = await Problems.AssertAsync(await clientA.PostAsJsonAsync("/api/v1/subscriptions", new { kind = "kafka" }), HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
            Assert.True(problem1.GetProperty("errors").TryGetProperty("kind", out _));
        }
        finally
        {
            await clientA.DeleteAsync($"/api/v1/subscriptions/{id}");
        }
    }

    private static Task WaitForAuditAsync(HttpClient client, Guid keyId) =>
        Eventually.TrueAsync(async () =>
            (await client.GetFromJsonAsync<JsonElement>("/api/v1/audit?type=ApiKeyCreated")).GetProperty("items").EnumerateArray()
                .Any(e => e.GetProperty("data").GetProperty("keyId").GetGuid() == keyId),
            TimeSpan.FromSeconds(30), "the audit log has the key's creation");
}
