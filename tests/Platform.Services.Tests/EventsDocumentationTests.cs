using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>docs/api/events.md: the audit entry example and the broker binding, run with a non-.NET AMQP client.</summary>
[Collection(StackCollection.Name)]
public sealed class EventsDocumentationTests(PlatformStack stack)
{
    private static readonly string Document = Path.Combine("api", "events.md");

    [Fact]
    public async Task The_documented_pika_consumer_bound_to_the_broker_receives_an_event_as_sent_and_so_does_the_audit_log()
    {
        var script = Path.Combine(Path.GetTempPath(), $"pika-consumer-{Guid.NewGuid():N}.py");
        await File.WriteAllTextAsync(script, PythonExample());
        var slug = $"pika-{Guid.NewGuid():N}"[..20];
        using var python = Process.Start(new ProcessStartInfo("/usr/bin/python3", [script])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment = { ["AMQP_URL"] = stack.Environment.VirtualHost.ConnectionString, ["SLUG"] = slug },
        })!;
        try
        {
            var stderr = python.StandardError.ReadToEndAsync();
            Assert.Equal("bound", await python.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30)));
            using var admin = await stack.AdminAsync();
            var created = await admin.PostAsJsonAsync("/api/v1/tenants", new { slug, name = "Bound by pika" });
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            var tenant = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();

            var line = await python.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
            await python.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));

            Assert.True(python.ExitCode == 0, await stderr);
            var match = Regex.Match(line ?? "", "^TenantCreated ([0-9a-f-]{36}) Bound by pika$");
            Assert.True(match.Success, $"the consumer printed '{line}'");
            JsonElement entry = default;
            await Eventually.TrueAsync(async () =>
            {
                var page = await admin.GetFromJsonAsync<JsonElement>($"/api/v1/audit?type=TenantCreated&stream=tenant-{tenant}");
                entry = page.GetProperty("items").EnumerateArray().FirstOrDefault();
                return entry.ValueKind == JsonValueKind.Object;
            }, TimeSpan.FromSeconds(30), "the audit log records it");
            Assert.Equal(Guid.Parse(match.Groups[1].Value), entry.GetProperty("eventId").GetGuid());
            DocumentationTests.AssertSameShape(DocumentationTests.Example(Document, "audit-entry"), entry);
        }
        finally
        {
            if (!python.HasExited)
            {
                python.Kill();
            }

            File.Delete(script);
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
