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
}
