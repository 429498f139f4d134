using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Platform.Testing;

namespace Platform.Services.Tests;

[Collection(StackCollection.Name)]
public sealed class ExitNodeTests(PlatformStack stack)
{
    internal static readonly object ValidNode = new
    {
        name = "fra-1",
        endpoint = "203.0.113.7:51820",
        publicKey = Convert.ToBase64String(Enumerable.Range(1, 32).Select(i => (byte)i).ToArray()),
        allowedIps = new[] { "0.0.0.0/0" },
        region = "eu-central",
        locale = "de-DE",
        timezone = "Europe/Berlin",
        dns = new[] { "9.9.9.9" },
    };

    [Fact]
    public async Task A_tenant_registers_its_own_exit_nodes_sees_the_shared_ones_and_removes_only_its_own()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var shared = await admin.PostAsJsonAsync("/api/v1/exit-nodes", ValidNode);
        var own = await tenant.PostAsJsonAsync("/api/v1/exit-nodes", ValidNode);
        Assert.Equal(HttpStatusCode.Created, shared.StatusCode);
        Assert.Equal(HttpStatusCode.Created, own.StatusCode);
        var sharedId = (await shared.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        var ownNode = await own.Content.ReadFromJsonAsync<JsonElement>();
        Assert.False(ownNode.GetProperty("shared").GetBoolean());
        Assert.Equal("Europe/Berlin", ownNode.GetProperty("timezone").GetString());

        var listed = (await tenant.GetFromJsonAsync<JsonElement>("/api/v1/exit-nodes")).GetProperty("items").EnumerateArray().Select(n => n.GetProperty("id").GetGuid()).ToArray();
        Assert.Contains(sharedId, listed);
        Assert.Contains(ownNode.GetProperty("id").GetGuid(), listed);
        await Problems.AssertAsync(await tenant.DeleteAsync($"/api/v1/exit-nodes/{sharedId}"), HttpStatusCode.Forbidden, "urn:platform:problem:forbidden");
        Assert.Equal(HttpStatusCode.NoContent, (await tenant.DeleteAsync($"/api/v1/exit-nodes/{ownNode.GetProperty("id").GetGuid()}")).StatusCode);
        await Problems.AssertAsync(await tenant.GetAsync($"/api/v1/exit-nodes/{ownNode.GetProperty("id").GetGuid()}"), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/api/v1/exit-nodes/{sharedId}")).StatusCode);
    }

    [Fact]
    public async Task A_nodes_public_address_is_changed_by_its_owner_recorded_once_per_change_and_refused_when_malformed_or_not_theirs()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var (_, stranger) = await admin.CreateTenantWithAdminAsync();
        var shared = (await (await admin.PostAsJsonAsync("/api/v1/exit-nodes", ValidNode)).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        var own = (await (await tenant.PostAsJsonAsync("/api/v1/exit-nodes", ValidNode)).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();

        var changed = await tenant.PatchAsJsonAsync($"/api/v1/exit-nodes/{own}", new { exitAddress = "198.51.100.23" });
        Assert.Equal(HttpStatusCode.OK, changed.StatusCode);
        Assert.Equal("198.51.100.23", (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/exit-nodes/{own}")).GetProperty("exitAddress").GetString());
        Assert.Equal(HttpStatusCode.OK, (await tenant.PatchAsJsonAsync($"/api/v1/exit-nodes/{own}", new { exitAddress = "198.51.100.23" })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await tenant.PatchAsJsonAsync($"/api/v1/exit-nodes/{own}", new { exitAddress = "2001:db8::7" })).StatusCode);

        await Problems.AssertAsync(await tenant.PatchAsJsonAsync($"/api/v1/exit-nodes/{own}", new { exitAddress = "somewhere" }),
            HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        await Problems.AssertAsync(await stranger.PatchAsJsonAsync($"/api/v1/exit-nodes/{own}", new { exitAddress = "198.51.100.24" }),
            HttpStatusCode.NotFound, "urn:platform:problem:not-found");
        await Problems.AssertAsync(await tenant.PatchAsJsonAsync($"/api/v1/exit-nodes/{shared}", new { exitAddress = "198.51.100.24" }),
            HttpStatusCode.Forbidden, "urn:platform:problem:forbidden");
        Assert.Equal("2001:db8::7", (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/exit-nodes/{own}")).GetProperty("exitAddress").GetString());

        // Each change once, in order, with what it was before; the repeat of the same address is none.
        List<JsonElement> changes = [];
        await Eventually.TrueAsync(async () =>
        {
            var page = await tenant.GetFromJsonAsync<JsonElement>("/api/v1/audit?type=ExitNodeExitAddressChanged&limit=100");
            changes = page.GetProperty("items").EnumerateArray().Where(e => e.GetProperty("data").GetProperty("exitNodeId").GetGuid() == own).ToList();
            return changes.Count >= 2;
        }, TimeSpan.FromSeconds(30), "the changes reach the audit log");
        Assert.Equal([(null, "198.51.100.23"), ("198.51.100.23", "2001:db8::7")],
            changes.Select(e => (e.GetProperty("data").TryGetProperty("previous", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString() : null,
                e.GetProperty("data").GetProperty("current").GetString())));

        Assert.Equal(HttpStatusCode.NoContent, (await tenant.DeleteAsync($"/api/v1/exit-nodes/{own}")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/api/v1/exit-nodes/{shared}")).StatusCode);
    }

    [Theory]
    [InlineData("publicKey", "\"not-a-key\"")]
    [InlineData("publicKey", "\"AAAA\"")]
    [InlineData("endpoint", "\"203.0.113.7\"")]
    [InlineData("endpoint", "\"203.0.113.7:70000\"")]
    [InlineData("allowedIps", "[\"10.0.0.0/33\"]")]
    [InlineData("allowedIps", "[]")]
    [InlineData("dns", "[\"nine\"]")]
    [InlineData("exitAddress", "\"203.0.113\"")]
    public async Task A_malformed_exit_node_is_refused_naming_the_field_and_nothing_is_registered(string field, string value)
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var node = JsonNode.Parse(JsonSerializer.Serialize(ValidNode))!.AsObject();
        node[field] = JsonNode.Parse(value);
        var body = node.ToJsonString();

        var response = await tenant.PostAsync("/api/v1/exit-nodes", new StringContent(body, Encoding.UTF8, "application/json"));

        var problem = await Problems.AssertAsync(response, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), problem.ToString());
        Assert.DoesNotContain((await tenant.GetFromJsonAsync<JsonElement>("/api/v1/exit-nodes")).GetProperty("items").EnumerateArray(), n => !n.GetProperty("shared").GetBoolean());
    }
}
