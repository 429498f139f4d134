using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Hosting.Security;
using Platform.Testing;

namespace Platform.Services.Tests;

[Collection(StackCollection.Name)]
public sealed class ApiKeyTests(PlatformStack stack)
{
    [Fact]
    public async Task An_api_key_is_shown_once_works_in_either_header_within_its_role_and_tenant()
    {
        using var admin = await stack.AdminAsync();
        var (tenant, tenantAdmin) = await admin.CreateTenantWithAdminAsync();
        var other = await admin.CreateTenantAsync();

        var created = await tenantAdmin.PostAsJsonAsync("/api/v1/api-keys", new { name = "ci", role = Roles.Viewer });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var body = await created.Content.ReadFromJsonAsync<JsonElement>();
        var key = body.GetProperty("key").GetString()!;
        var prefix = body.GetProperty("prefix").GetString()!;
        Assert.StartsWith($"plk_{prefix}_", key, StringComparison.Ordinal);

        using var byAuthorization = await stack.AnonymousAsync();
        byAuthorization.DefaultRequestHeaders.Add("Authorization", $"ApiKey {key}");
        using var byHeader = await stack.AnonymousAsync();
        byHeader.DefaultRequestHeaders.Add("X-Api-Key", key);
        Assert.Equal(HttpStatusCode.OK, (await byAuthorization.GetAsync($"/api/v1/tenants/{tenant}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await byHeader.GetAsync($"/api/v1/tenants/{tenant}/users")).StatusCode);
        await Problems.AssertAsync(await byHeader.GetAsync($"/api/v1/tenants/{other}"), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
        await Problems.AssertAsync(
            await byHeader.PostAsJsonAsync($"/api/v1/tenants/{tenant}/users", new { username = "by-key", password = "correct horse battery staple", role = Roles.Member }),
            HttpStatusCode.Forbidden,
            "urn:platform:problem:forbidden");
        var listed = await tenantAdmin.GetStringAsync("/api/v1/api-keys");
        Assert.Contains(prefix, listed, StringComparison.Ordinal);
        Assert.DoesNotContain(key, listed, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_revoked_key_and_an_expired_key_are_refused_with_401()
    {
        using var admin = await stack.AdminAsync();
        var (tenant, tenantAdmin) = await admin.CreateTenantWithAdminAsync();
        var (revokedId, revoked) = await tenantAdmin.CreateApiKeyAsync(new { name = "to-revoke", role = Roles.Member });
        var (_, expiring) = await tenantAdmin.CreateApiKeyAsync(new { name = "short-lived", role = Roles.Member, expiresAt = DateTimeOffset.UtcNow.AddSeconds(3) });
        using var withRevoked = PlatformApi.WithApiKey(await stack.AnonymousAsync(), revoked);
        using var withExpiring = PlatformApi.WithApiKey(await stack.AnonymousAsync(), expiring);
        using var withUnknown = PlatformApi.WithApiKey(await stack.AnonymousAsync(), revoked[..^4] + "AAAA");
        Assert.Equal(HttpStatusCode.OK, (await withRevoked.GetAsync($"/api/v1/tenants/{tenant}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await withExpiring.GetAsync($"/api/v1/tenants/{tenant}")).StatusCode);

        Assert.Equal(HttpStatusCode.NoContent, (await tenantAdmin.DeleteAsync($"/api/v1/api-keys/{revokedId}")).StatusCode);

        await Eventually.TrueAsync(async () => (await withRevoked.GetAsync($"/api/v1/tenants/{tenant}")).StatusCode == HttpStatusCode.Unauthorized,
            TimeSpan.FromSeconds(15), "the revocation reaches the gateway within its cache interval");
        await Eventually.TrueAsync(async () => (await withExpiring.GetAsync($"/api/v1/tenants/{tenant}")).StatusCode == HttpStatusCode.Unauthorized,
            TimeSpan.FromSeconds(15), "the key stops working when it expires");
        await Problems.AssertAsync(await withUnknown.GetAsync($"/api/v1/tenants/{tenant}"), HttpStatusCode.Unauthorized, "urn:platform:problem:unauthorized");
        await Problems.AssertAsync(
            await tenantAdmin.PostAsJsonAsync("/api/v1/api-keys", new { name = "past", role = Roles.Member, expiresAt = DateTimeOffset.UtcNow.AddHours(-1) }),
            HttpStatusCode.UnprocessableEntity,
            "urn:platform:problem:validation-failed");
        await Problems.AssertAsync(
            await tenantAdmin.PostAsJsonAsync("/api/v1/api-keys", new { name = "too-strong", role = Roles.PlatformAdmin }),
            HttpStatusCode.UnprocessableEntity,
            "urn:platform:problem:validation-failed");
    }

    [Fact]
    public async Task Another_tenants_key_cannot_be_revoked_or_seen()
    {
        using var admin = await stack.AdminAsync();
        var (_, adminOfA) = await admin.CreateTenantWithAdminAsync();
        var (_, adminOfB) = await admin.CreateTenantWithAdminAsync();
        var (keyOfA, _) = await adminOfA.CreateApiKeyAsync(new { name = "a-key", role = Roles.Member });

        await Problems.AssertAsync(await adminOfB.DeleteAsync($"/api/v1/api-keys/{keyOfA}"), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
        Assert.DoesNotContain(keyOfA.ToString(), await adminOfB.GetStringAsync("/api/v1/api-keys"), StringComparison.Ordinal);
    }
}
