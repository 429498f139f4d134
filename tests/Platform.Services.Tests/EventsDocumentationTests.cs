using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>docs/api/events.md: the audit entry example and the pika consumer, run with a subscription's own credentials.</summary>
[Collection(StackCollection.Name)]
public sealed class EventsDocumentationTests(PlatformStack stack)
{
    private static readonly string Document = Path.Combine("api", "events.md");

    [Fact]
    public async Task The_documented_pika_consumer_on_a_platform_wide_queue_receives_an_event_as_sent_and_so_does_the_audit_log()
    {
        using var admin = await stack.AdminAsync();
        var subscription = await admin.CreateAmqpSubscriptionAsync();
        try
        {
            var created = await admin.PostAsJsonAsync("/api/v1/tenants", new { slug = $"pika-{Guid.NewGuid():N}"[..20], name = "Read by pika" });
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            var tenant = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
            JsonElement entry = default;
            await Eventually.TrueAsync(async () =>
            {
                var page = await admin.GetFromJsonAsync<JsonElement>($"/api/v1/audit?type=TenantCreated&stream=tenant-{tenant}");
                entry = page.GetProperty("items").EnumerateArray().FirstOrDefault();
                return entry.ValueKind == JsonValueKind.Object;
            }, TimeSpan.FromSeconds(30), "the audit log records it");

            // The audit log and the queue are bound to the same exchange: the event is in the queue by now.
            var lines = await RunConsumerAsync(subscription);

            Assert.Contains($"TenantCreated {entry.GetProperty("eventId").GetGuid()} {tenant}", lines);
            DocumentationTests.AssertSameShape(DocumentationTests.Example(Document, "audit-entry"), entry);
        }
        finally
        {
            Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/api/v1/subscriptions/{subscription.Id}")).StatusCode);
        }
    }

    /// <summary>Runs the documented consumer until its queue has been idle for a few seconds; answers the lines it printed.</summary>
    public static async Task<IReadOnlyList<string>> RunConsumerAsync(AmqpSubscription subscription) =>
        (await Pika.RunAsync(PythonExample(), subscription, TimeSpan.FromSeconds(120))).Split('\n', StringSplitOptions.RemoveEmptyEntries);

    private static string PythonExample()
    {
        var text = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "docs", Document));
        var match = Regex.Match(text, "<!-- example: pika-consumer -->\\s*```python\\n(.*?)```", RegexOptions.Singleline);
        Assert.True(match.Success, "docs/api/events.md has the pika example");
        return match.Groups[1].Value;
    }
}
