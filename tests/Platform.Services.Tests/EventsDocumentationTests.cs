using System.Diagnostics;
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
        var subscription = await CreateAmqpSubscriptionAsync(admin);
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

    /// <summary>The subscription's id, AMQP URL (with the password) and queue.</summary>
    public sealed record AmqpSubscription(Guid Id, string Url, string Queue);

    public static async Task<AmqpSubscription> CreateAmqpSubscriptionAsync(HttpClient client)
    {
        var response = await client.PostAsJsonAsync("/api/v1/subscriptions", new { kind = "amqp" });
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        var amqp = body.GetProperty("amqp");
        return new AmqpSubscription(body.GetProperty("id").GetGuid(), amqp.GetProperty("url").GetString()!, amqp.GetProperty("queue").GetString()!);
    }

    /// <summary>Runs the documented consumer until its queue has been idle for a few seconds; answers the lines it printed.</summary>
    public static async Task<IReadOnlyList<string>> RunConsumerAsync(AmqpSubscription subscription) =>
        (await RunPythonAsync(PythonExample(), subscription, TimeSpan.FromSeconds(120))).Split('\n', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>Runs <paramref name="script"/> with AMQP_URL and AMQP_QUEUE set; answers its output, and fails the test when it fails.</summary>
    public static async Task<string> RunPythonAsync(string script, AmqpSubscription subscription, TimeSpan timeout, IReadOnlyDictionary<string, string>? environment = null)
    {
        var file = Path.Combine(Path.GetTempPath(), $"pmt-pika-{Guid.NewGuid():N}.py");
        await File.WriteAllTextAsync(file, script);
        var start = new ProcessStartInfo("/usr/bin/python3", [file])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment = { ["AMQP_URL"] = subscription.Url, ["AMQP_QUEUE"] = subscription.Queue, ["IDLE_SECONDS"] = "3" },
        };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        using var python = Process.Start(start)!;
        try
        {
            var output = python.StandardOutput.ReadToEndAsync();
            var errors = python.StandardError.ReadToEndAsync();
            await python.WaitForExitAsync().WaitAsync(timeout);
            Assert.True(python.ExitCode == 0, $"python exited {python.ExitCode}: {await errors}");
            return await output;
        }
        finally
        {
            if (!python.HasExited)
            {
                python.Kill();
            }

            File.Delete(file);
        }
    }

    private static string PythonExample()
    {
        var text = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "docs", Document));
        var match = Regex.Match(text, "<!-- example: pika-consumer -->\\s*```python\\n(.*?)```", RegexOptions.Singleline);
        Assert.True(match.Success, "docs/api/events.md has the pika example");
        return match.Groups[1].Value;
    }
}
