using Platform.Testing;
using System.Net.Http.Json;
using System.Text.Json;

namespace Platform.Services.Tests;

/// <summary>The examples in docs/api/machines.md are what the API answers.</summary>
[Collection(StackCollection.Name)]
public sealed class MachineDocumentationTests(PlatformStack stack)
{
    private static readonly string Document = Path.Combine("api", "machines.md");

    [Fact]
    public async Task The_documented_accepted_machine_and_operation_examples_have_the_shape_the_api_answers()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();

        var created = await tenant.PostAsJsonAsync("/api/v1/machines", new { name = "agent-7", kind = "microvm", vcpus = 1, memoryMiB = 128, labels = new { team = "ml" } });
        var accepted = await created.Content.ReadFromJsonAsync<JsonElement>();
        var machine = await tenant.WaitForMachineAsync(accepted.GetProperty("id").GetGuid(), "running");
        var operation = await tenant.GetFromJsonAsync<JsonElement>(created.Headers.Location);

        DocumentationTests.AssertSameShape(DocumentationTests.Example(Document, "accepted"), accepted);
        DocumentationTests.AssertSameShape(DocumentationTests.Example(Document, "machine"), machine);
        DocumentationTests.AssertSameShape(DocumentationTests.Example(Document, "operation"), operation);
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{accepted.GetProperty("id").GetGuid()}");
        await tenant.WaitForMachineAsync(accepted.GetProperty("id").GetGuid(), "destroyed");
    }

    [Fact]
    public async Task A_machine_reads_back_as_it_stood_at_a_version_or_a_time_even_after_it_was_destroyed()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var (_, other) = await admin.CreateTenantWithAdminAsync();
        var before = DateTimeOffset.UtcNow.AddSeconds(-1);
        var id = await tenant.CreateMachineAsync(new { name = "agent-7", kind = "microvm", vcpus = 1, memoryMiB = 128, labels = new { team = "ml" } });
        var running = await tenant.WaitForMachineAsync(id, "running");
        var runningVersion = running.GetProperty("version").GetInt64();

        var first = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}?version=1");
        var now = await tenant.GetAsync($"/api/v1/machines/{id}?at={Uri.EscapeDataString(DateTimeOffset.UtcNow.ToString("O"))}");
        DocumentationTests.AssertSameShape(DocumentationTests.Example(Document, "machine-then"), first);
        Assert.Equal("creating", first.GetProperty("state").GetString());
        Assert.Equal(1, first.GetProperty("version").GetInt64());
        Assert.Equal(running.GetProperty("state").GetString(), (await now.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("state").GetString());
        Assert.False(now.Headers.Contains("ETag"));

        // The audit entry of the machine's MachineRunning links to the state it produced.
        var link = "";
        await Eventually.TrueAsync(async () =>
        {
            var page = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/audit?type=MachineRunning&stream=machine-{id}");
            var entry = page.GetProperty("items").EnumerateArray().FirstOrDefault();
            link = entry.ValueKind == JsonValueKind.Object ? entry.GetProperty("state").GetString()! : "";
            return link.Length > 0;
        }, TimeSpan.FromSeconds(30), "the machine's MachineRunning is in the audit log");
        var produced = await tenant.GetFromJsonAsync<JsonElement>(link);
        Assert.Equal("running", produced.GetProperty("state").GetString());

        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
        var thenRunning = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}?version={runningVersion}");
        Assert.Equal("running", thenRunning.GetProperty("state").GetString());
        Assert.Equal(runningVersion, thenRunning.GetProperty("version").GetInt64());
        Assert.Equal("destroyed", (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}?version=1000")).GetProperty("state").GetString());

        await Problems.AssertAsync(await tenant.GetAsync($"/api/v1/machines/{id}?at={Uri.EscapeDataString(before.ToString("O"))}"), System.Net.HttpStatusCode.NotFound, "urn:platform:problem:not-found");
        await Problems.AssertAsync(await other.GetAsync($"/api/v1/machines/{id}?version=1"), System.Net.HttpStatusCode.NotFound, "urn:platform:problem:not-found");
        await Problems.AssertAsync(await tenant.GetAsync($"/api/v1/machines/{id}?at=yesterday"), System.Net.HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        await Problems.AssertAsync(await tenant.GetAsync($"/api/v1/machines/{id}?version=0"), System.Net.HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
    }
}
