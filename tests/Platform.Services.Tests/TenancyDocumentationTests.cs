using Platform.Testing;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Hosting.Security;

namespace Platform.Services.Tests;

/// <summary>The examples in docs/api/tenancy.md are what the API answers.</summary>
[Collection(StackCollection.Name)]
public sealed class TenancyDocumentationTests(PlatformStack stack)
{
    private static readonly string Document = Path.Combine("api", "tenancy.md");

    [Fact]
    public async Task The_documented_token_tenant_api_key_and_quota_examples_have_the_shape_the_api_answers()
    {
        using var anonymous = await stack.AnonymousAsync();
        var credentials = JsonDocument.Parse(await File.ReadAllTextAsync(stack.AdminCredentialsFile)).RootElement;
        var token = await (await anonymous.PostAsJsonAsync("/api/v1/auth/token", credentials)).Content.ReadFromJsonAsync<JsonElement>();
        using var admin = await stack.AdminAsync();
        var (tenantId, tenantAdmin) = await admin.CreateTenantWithAdminAsync();
        var tenant = await admin.GetFromJsonAsync<JsonElement>($"/api/v1/tenants/{tenantId}");
        var key = await (await tenantAdmin.PostAsJsonAsync("/api/v1/api-keys", new { name = "ci", role = Roles.Member, expiresAt = DateTimeOffset.UtcNow.AddDays(30) }))
            .Content.ReadFromJsonAsync<JsonElement>();
        var quota = await tenantAdmin.GetFromJsonAsync<JsonElement>("/api/v1/quotas");

        DocumentationTests.AssertSameShape(DocumentationTests.Example(Document, "token"), token);
        DocumentationTests.AssertSameShape(DocumentationTests.Example(Document, "tenant"), tenant);
        DocumentationTests.AssertSameShape(DocumentationTests.Example(Document, "api-key"), key);
        DocumentationTests.AssertSameShape(DocumentationTests.Example(Document, "quota"), quota);
    }
}
