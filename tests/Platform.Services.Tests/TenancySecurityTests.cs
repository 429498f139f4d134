using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Platform.Hosting.Security;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>Tenancy's users, tokens and tenant isolation, through the gateway as a client meets them.</summary>
[Collection(StackCollection.Name)]
public sealed class TenancySecurityTests(PlatformStack stack)
{
    private const string Password = "correct horse battery staple";

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task The_first_platform_admin_is_created_once_with_a_private_credentials_file_and_can_log_in()
    {
        using var admin = await stack.AdminAsync();

        var me = await admin.GetFromJsonAsync<JsonElement>("/api/v1/users/me");

        Assert.Equal("admin", me.GetProperty("username").GetString());
        Assert.Equal(Roles.PlatformAdmin, me.GetProperty("role").GetString());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(stack.AdminCredentialsFile));
        Assert.Equal(1L, await stack.Environment.Database.ScalarAsync<long>("SELECT count(*) FROM tenancy.users WHERE role = 'platform-admin'"));
    }

    [Fact]
    public async Task A_tenant_admin_manages_only_its_own_tenant_and_finds_no_other()
    {
        using var admin = await stack.AdminAsync();
        var a = await CreateTenantAsync(admin);
        var b = await CreateTenantAsync(admin);
        var adminOfA = await CreateUserAsync(admin, a, Roles.TenantAdmin);
        using var client = await stack.LoginAsync(adminOfA, Password);

        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync($"/api/v1/tenants/{a}")).StatusCode);
        await Problems.AssertAsync(await client.GetAsync($"/api/v1/tenants/{b}"), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
        await Problems.AssertAsync(await client.GetAsync($"/api/v1/tenants/{b}/users"), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
        await Problems.AssertAsync(await client.PostAsJsonAsync($"/api/v1/tenants/{b}/users", new { username = Unique("x"), password = Password, role = Roles.Member }), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
        await Problems.AssertAsync(await client.PostAsJsonAsync("/api/v1/tenants", new { slug = Unique("t"), name = "Nope" }), HttpStatusCode.Forbidden, "urn:platform:problem:forbidden");
        var visible = await client.GetFromJsonAsync<JsonElement>("/api/v1/tenants");
        Assert.Equal([a], visible.GetProperty("items").EnumerateArray().Select(t => t.GetProperty("id").GetGuid()));
        Assert.Equal(HttpStatusCode.Created, (await client.PostAsJsonAsync($"/api/v1/tenants/{a}/users", new { username = Unique("member"), password = Password, role = Roles.Member })).StatusCode);
    }

    [Fact]
    public async Task A_viewer_reads_its_tenant_but_cannot_change_it()
    {
        using var admin = await stack.AdminAsync();
        var tenant = await CreateTenantAsync(admin);
        using var viewer = await stack.LoginAsync(await CreateUserAsync(admin, tenant, Roles.Viewer), Password);

        Assert.Equal(HttpStatusCode.OK, (await viewer.GetAsync($"/api/v1/tenants/{tenant}/users")).StatusCode);
        await Problems.AssertAsync(
            await viewer.PostAsJsonAsync($"/api/v1/tenants/{tenant}/users", new { username = Unique("x"), password = Password, role = Roles.Member }),
            HttpStatusCode.Forbidden,
            "urn:platform:problem:forbidden");
    }

    [Fact]
    public async Task A_missing_malformed_tampered_or_foreign_token_is_refused_with_401()
    {
        using var admin = await stack.AdminAsync();
        var token = admin.DefaultRequestHeaders.Authorization!.Parameter!;
        var parts = token.Split('.');
        var tampered = $"{parts[0]}.{Base64Url(Encoding.UTF8.GetBytes("""{"sub":"x","role":"platform-admin","iss":"platform","aud":"platform-api","exp":9999999999}"""))}.{parts[2]}";
        var foreign = AccessTokens.Issue(SigningKey.Generate(new JsonWebToken(token).Kid), Guid.NewGuid().ToString(), "mallory", Roles.PlatformAdmin, null, DateTimeOffset.UtcNow, TimeSpan.FromHours(1));

        foreach (var bad in new[] { null, "not-a-jwt", tampered, foreign })
        {
            using var client = bad is null ? await stack.AnonymousAsync() : PlatformApi.WithToken(await stack.AnonymousAsync(), bad);
            await Problems.AssertAsync(await client.GetAsync("/api/v1/users/me"), HttpStatusCode.Unauthorized, "urn:platform:problem:unauthorized");
        }

        using var anonymous = await stack.AnonymousAsync();
        await Problems.AssertAsync(
            await anonymous.PostAsJsonAsync("/api/v1/auth/token", new { username = "admin", password = "wrong password here" }),
            HttpStatusCode.Unauthorized,
            "urn:platform:problem:unauthorized");
    }

    [Fact]
    public async Task A_direct_call_to_a_service_with_forged_identity_headers_is_refused()
    {
        using var direct = new HttpClient { BaseAddress = await stack.Service("tenancy").Address };
        direct.DefaultRequestHeaders.Add(IdentityHeaders.Subject, "user:" + Guid.NewGuid());
        direct.DefaultRequestHeaders.Add(IdentityHeaders.Role, Roles.PlatformAdmin);
        direct.DefaultRequestHeaders.Add(IdentityHeaders.InternalToken, "guessed-" + new string('x', 40));

        var response = await direct.PostAsJsonAsync("/api/v1/tenants", new { slug = Unique("forged"), name = "Forged" });

        await Problems.AssertAsync(response, HttpStatusCode.Unauthorized, "urn:platform:problem:unauthorized");
    }

    [Fact]
    public async Task Identity_headers_forged_through_the_gateway_are_stripped()
    {
        using var admin = await stack.AdminAsync();
        var tenant = await CreateTenantAsync(admin);
        using var member = await stack.LoginAsync(await CreateUserAsync(admin, tenant, Roles.Member), Password);
        member.DefaultRequestHeaders.Add(IdentityHeaders.Role, Roles.PlatformAdmin);
        member.DefaultRequestHeaders.Add(IdentityHeaders.TenantId, Guid.NewGuid().ToString());
        using var anonymous = await stack.AnonymousAsync();
        anonymous.DefaultRequestHeaders.Add(IdentityHeaders.InternalToken, ServiceProcess.InternalToken);
        anonymous.DefaultRequestHeaders.Add(IdentityHeaders.Subject, "user:" + Guid.NewGuid());
        anonymous.DefaultRequestHeaders.Add(IdentityHeaders.Role, Roles.PlatformAdmin);

        await Problems.AssertAsync(await member.PostAsJsonAsync("/api/v1/tenants", new { slug = Unique("t"), name = "Forged" }), HttpStatusCode.Forbidden, "urn:platform:problem:forbidden");
        Assert.Equal(Roles.Member, (await member.GetFromJsonAsync<JsonElement>("/api/v1/users/me")).GetProperty("role").GetString());
        await Problems.AssertAsync(await anonymous.GetAsync("/api/v1/users/me"), HttpStatusCode.Unauthorized, "urn:platform:problem:unauthorized");
    }

    [Fact]
    public async Task Bad_input_is_answered_with_a_problem_and_changes_nothing()
    {
        using var admin = await stack.AdminAsync();
        var tenant = await CreateTenantAsync(admin);
        var slug = Unique("dup");
        Assert.Equal(HttpStatusCode.Created, (await admin.PostAsJsonAsync("/api/v1/tenants", new { slug, name = "First" })).StatusCode);
        var tenantsBefore = await stack.Environment.Database.ScalarAsync<long>("SELECT count(*) FROM tenancy.tenants");
        var eventsBefore = await stack.Environment.Database.ScalarAsync<long>("SELECT count(*) FROM tenancy.mt_events");

        var weak = await admin.PostAsJsonAsync($"/api/v1/tenants/{tenant}/users", new { username = Unique("weak"), password = "short", role = Roles.Member });
        var badRole = await admin.PostAsJsonAsync($"/api/v1/tenants/{tenant}/users", new { username = Unique("role"), password = Password, role = "emperor" });
        var duplicate = await admin.PostAsJsonAsync("/api/v1/tenants", new { slug, name = "Second" });
        var badSlug = await admin.PostAsJsonAsync("/api/v1/tenants", new { slug = "Not A Slug!", name = "x" });
        var malformed = await admin.PostAsync("/api/v1/tenants", new StringContent("{\"slug\": ", Encoding.UTF8, "application/json"));
        var wrongType = await admin.PostAsync("/api/v1/tenants", new StringContent("{\"slug\": 42}", Encoding.UTF8, "application/json"));
        var badPaging = await admin.GetAsync("/api/v1/tenants?limit=0&cursor=nonsense");

        var errors = (await Problems.AssertAsync(weak, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed")).GetProperty("errors");
        Assert.Contains("must be at least 12 characters", errors.GetProperty("password").EnumerateArray().Select(e => e.GetString()));
        await Problems.AssertAsync(badRole, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        await Problems.AssertAsync(duplicate, HttpStatusCode.Conflict, "urn:platform:problem:conflict");
        await Problems.AssertAsync(badSlug, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        await Problems.AssertAsync(malformed, HttpStatusCode.BadRequest, "urn:platform:problem:malformed-request");
        await Problems.AssertAsync(wrongType, HttpStatusCode.BadRequest, "urn:platform:problem:malformed-request");
        await Problems.AssertAsync(badPaging, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        Assert.Equal(tenantsBefore, await stack.Environment.Database.ScalarAsync<long>("SELECT count(*) FROM tenancy.tenants"));
        Assert.Equal(eventsBefore, await stack.Environment.Database.ScalarAsync<long>("SELECT count(*) FROM tenancy.mt_events"));
    }

    [Fact]
    public async Task A_rotated_signing_key_signs_new_tokens_and_tokens_of_the_old_key_stay_valid()
    {
        using var before = await stack.AdminAsync();
        var oldKey = new JsonWebToken(before.DefaultRequestHeaders.Authorization!.Parameter!).Kid;

        var rotated = await before.PostAsync("/api/v1/auth/signing-keys/rotate", null);
        using var after = await stack.AdminAsync();

        Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
        Assert.NotEqual(oldKey, new JsonWebToken(after.DefaultRequestHeaders.Authorization!.Parameter!).Kid);
        Assert.Equal(HttpStatusCode.OK, (await after.GetAsync("/api/v1/users/me")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await before.GetAsync("/api/v1/users/me")).StatusCode);
    }

    [Fact]
    public async Task A_changed_password_replaces_the_old_one_and_no_password_token_or_key_is_ever_stored_or_logged()
    {
        using var admin = await stack.AdminAsync();
        var tenant = await CreateTenantAsync(admin);
        var username = await CreateUserAsync(admin, tenant, Roles.Member);
        using var member = await stack.LoginAsync(username, Password);
        const string newPassword = "a new, much longer passphrase";

        var changed = await member.PostAsJsonAsync("/api/v1/users/me/password", new { currentPassword = Password, newPassword });

        Assert.Equal(HttpStatusCode.NoContent, changed.StatusCode);
        using var anonymous = await stack.AnonymousAsync();
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsJsonAsync("/api/v1/auth/token", new { username, password = Password })).StatusCode);
        using var again = await stack.LoginAsync(username, newPassword);
        var keyResponse = await admin.PostAsJsonAsync("/api/v1/api-keys", new { name = "scanned", role = Roles.PlatformAdmin });
        var apiKey = (await keyResponse.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("key").GetString()!;
        using var byKey = await stack.AnonymousAsync();
        byKey.DefaultRequestHeaders.Add("X-Api-Key", apiKey);
        Assert.Equal(HttpStatusCode.OK, (await byKey.GetAsync("/api/v1/governance/guardrails")).StatusCode);
        var adminPassword = JsonDocument.Parse(await File.ReadAllTextAsync(stack.AdminCredentialsFile)).RootElement.GetProperty("password").GetString()!;
        var secrets = new[] { Password, newPassword, adminPassword, member.DefaultRequestHeaders.Authorization!.Parameter!, again.DefaultRequestHeaders.Authorization!.Parameter!, ServiceProcess.InternalToken, apiKey };
        await using var events = stack.Environment.Database.DataSource.CreateCommand("SELECT data::text || coalesce(headers::text, '') FROM tenancy.mt_events");
        var stored = new List<string>();
        await using (var reader = await events.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                stored.Add(reader.GetString(0));
            }
        }

        Assert.NotEmpty(stored);
        foreach (var secret in secrets)
        {
            Assert.DoesNotContain(stored, text => text.Contains(secret, StringComparison.Ordinal));
            Assert.DoesNotContain(stack.Output, line => line.Contains(secret, StringComparison.Ordinal));
        }
    }

    private static async Task<Guid> CreateTenantAsync(HttpClient admin)
    {
        var response = await admin.PostAsJsonAsync("/api/v1/tenants", new { slug = Unique("tenant"), name = "A tenant" });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
    }

    private static async Task<string> CreateUserAsync(HttpClient admin, Guid tenant, string role)
    {
        var username = Unique(role);
        var response = await admin.PostAsJsonAsync($"/api/v1/tenants/{tenant}/users", new { username, password = Password, role });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return username;
    }

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 13, 60)];

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
