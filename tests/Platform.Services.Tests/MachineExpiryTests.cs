using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>Time-to-live and idle policies: machines end by themselves, warned first, judged by the work their hosts see in them.</summary>
[Collection(StackCollection.Name)]
public sealed class MachineExpiryTests(PlatformStack stack)
{
    [Fact]
    public async Task An_idle_sandbox_is_not_destroyed_while_it_keeps_a_cpu_busy_and_is_once_it_idles_with_the_warning_and_the_expiry_in_the_audit_log()
    {
        using var tenant = await TenantAsync();
        // Busy for 20 s (twice its idle time), then idle for good.
        var id = await tenant.CreateMachineAsync(new
        {
            kind = "sandbox", vcpus = 1, memoryMiB = 64, idle = new { afterSeconds = 10, action = "destroy" },
            command = new[] { "/bin/sh", "-c", "end=$(($(date +%s) + 20)); while [ $(date +%s) -lt $end ]; do :; done; sleep 100000" },
        });
        await tenant.WaitForMachineAsync(id, "running");

        await Task.Delay(TimeSpan.FromSeconds(18));
        var whileBusy = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}");
        var destroyed = await tenant.GetAsync($"/api/v1/machines/{id}/wait?state=destroyed&timeout=45s");
        var audit = await AuditTypesAsync(tenant, id);

        Assert.Equal("running", whileBusy.GetProperty("state").GetString());
        Assert.Equal(HttpStatusCode.OK, destroyed.StatusCode);
        var expiring = audit.IndexOf("MachineExpiring");
        Assert.True(expiring >= 0 && audit.IndexOf("MachineExpired") > expiring && audit.IndexOf("MachineDestroyRequested") > audit.IndexOf("MachineExpired"), string.Join(", ", audit));
    }

    [Fact]
    public async Task A_time_to_live_starts_again_at_each_keepalive_and_ends_the_machine_after_the_last()
    {
        using var tenant = await TenantAsync();
        var id = await tenant.CreateMachineAsync(new { kind = "sandbox", vcpus = 1, memoryMiB = 64, ttlSeconds = 10 });
        var running = await tenant.WaitForMachineAsync(id, "running");

        await Task.Delay(TimeSpan.FromSeconds(6));
        var kept = await tenant.PostAsync($"/api/v1/machines/{id}/keepalive", null);
        var keptMachine = await kept.Content.ReadFromJsonAsync<JsonElement>();
        await Task.Delay(TimeSpan.FromSeconds(6));
        var afterFirstTtl = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}");
        var destroyed = await tenant.GetAsync($"/api/v1/machines/{id}/wait?state=destroyed&timeout=30s");
        var events = (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/events")).EnumerateArray().ToList();

        Assert.Equal(HttpStatusCode.OK, kept.StatusCode);
        var firstExpiry = running.GetProperty("lifecycle").GetProperty("expiresAt").GetDateTimeOffset();
        Assert.True(keptMachine.GetProperty("lifecycle").GetProperty("expiresAt").GetDateTimeOffset() >= firstExpiry.AddSeconds(5));
        Assert.Equal("running", afterFirstTtl.GetProperty("state").GetString());
        Assert.Equal(HttpStatusCode.OK, destroyed.StatusCode);
        var expired = events.Single(e => e.GetProperty("type").GetString() == "MachineExpired");
        Assert.Equal(("ttl", "destroy"), (expired.GetProperty("data").GetProperty("reason").GetString(), expired.GetProperty("data").GetProperty("action").GetString()));
        Assert.Equal(MachineExpirySweeperActor, expired.GetProperty("actor").GetString());
    }

    [Fact]
    public async Task A_lifecycle_is_set_and_cleared_later_and_nonsense_is_refused_naming_the_field()
    {
        using var tenant = await TenantAsync();
        var badTtl = await tenant.PostAsJsonAsync("/api/v1/machines", new { kind = "sandbox", vcpus = 1, memoryMiB = 64, ttlSeconds = 5 });
        var badIdle = await tenant.PostAsJsonAsync("/api/v1/machines", new { kind = "sandbox", vcpus = 1, memoryMiB = 64, idle = new { afterSeconds = 60, action = "explode" } });
        var id = await tenant.CreateMachineAsync(new { kind = "sandbox", vcpus = 1, memoryMiB = 64 });
        await tenant.WaitForMachineAsync(id, "running");

        var set = await tenant.PatchAsJsonAsync($"/api/v1/machines/{id}/lifecycle", new { ttlSeconds = 3600, idle = new { afterSeconds = 600, action = "pause" } });
        var setMachine = await set.Content.ReadFromJsonAsync<JsonElement>();
        var cleared = await tenant.PatchAsJsonAsync($"/api/v1/machines/{id}/lifecycle", new { });
        var clearedMachine = await cleared.Content.ReadFromJsonAsync<JsonElement>();
        var badPatch = await tenant.PatchAsJsonAsync($"/api/v1/machines/{id}/lifecycle", new { idle = new { afterSeconds = 1, action = "stop" } });

        (await Problems.AssertAsync(badTtl, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed")).GetProperty("errors").GetProperty("ttlSeconds");
        (await Problems.AssertAsync(badIdle, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed")).GetProperty("errors").GetProperty("idle");
        (await Problems.AssertAsync(badPatch, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed")).GetProperty("errors").GetProperty("idle");
        Assert.Equal(HttpStatusCode.OK, set.StatusCode);
        Assert.Equal((3600, 600, "pause"), (setMachine.GetProperty("lifecycle").GetProperty("ttlSeconds").GetInt32(),
            setMachine.GetProperty("lifecycle").GetProperty("idle").GetProperty("afterSeconds").GetInt32(), setMachine.GetProperty("lifecycle").GetProperty("idle").GetProperty("action").GetString()));
        Assert.Equal(HttpStatusCode.OK, cleared.StatusCode);
        Assert.False(clearedMachine.TryGetProperty("lifecycle", out _), "a machine with no policy shows none");
        Assert.Equal(set.Headers.ETag!.Tag, $"\"{setMachine.GetProperty("version").GetInt64()}\"");
    }

    private const string MachineExpirySweeperActor = "service:provisioning-lifecycle";

    private async Task<HttpClient> TenantAsync()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        tenant.Timeout = TimeSpan.FromSeconds(90);
        return tenant;
    }

    /// <summary>The machine's entries in the audit log, oldest first, once the last of them (its destruction) is in.</summary>
    private static async Task<List<string>> AuditTypesAsync(HttpClient tenant, Guid id)
    {
        List<string> types = [];
        await Eventually.TrueAsync(async () =>
        {
            var page = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/audit?stream=machine-{id}&limit=200");
            types = page.GetProperty("items").EnumerateArray().OrderBy(e => e.GetProperty("streamVersion").GetInt64()).Select(e => e.GetProperty("type").GetString()!).ToList();
            return types.Contains("MachineDestroyed");
        }, TimeSpan.FromSeconds(30), "the audit log has the machine's end");
        return types;
    }
}
