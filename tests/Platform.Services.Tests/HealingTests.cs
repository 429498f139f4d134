using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>The healing watchdog with real sandboxes: what it restarts, when it gives up, and that every action is audited.</summary>
[Collection(StackCollection.Name)]
public sealed class HealingTests(PlatformStack stack)
{
    private static readonly object QuickPolicy = new { enabled = true, maxAttempts = 2, initialBackoffSeconds = 0.2, maxBackoffSeconds = 1, resetAfterSeconds = 600 };

    // Only a guard against a hung test: on a fresh machine under the whole suite's load three launches and the audit's
    // trail through the relay took longer than 30 s once.
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task A_sandbox_that_dies_is_started_again_by_the_watchdog_and_the_actions_are_in_the_audit_log()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        Assert.Equal(HttpStatusCode.OK, (await tenant.PutAsJsonAsync("/api/v1/healing/policy", QuickPolicy)).StatusCode);
        var id = await tenant.CreateMachineAsync(new { name = "phoenix", kind = "sandbox", vcpus = 1, memoryMiB = 64 });
        await tenant.WaitForMachineAsync(id, "running");

        await KillSandboxAsync(id);

        var history = "";
        try
        {
            await Eventually.TrueAsync(async () =>
            {
                var events = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/events");
                history = string.Join(", ", events.EnumerateArray().Select(e => $"{e.GetProperty("type").GetString()} by {e.GetProperty("actor").GetString()}"));
                return events.EnumerateArray().Any(e => e.GetProperty("type").GetString() == "MachineStartRequested" && e.GetProperty("actor").GetString() == "service:telemetry:healing")
                    && events.EnumerateArray().Last().GetProperty("type").GetString() == "MachineRunning";
            }, Patience, "the watchdog starts the dead sandbox again and it runs");
        }
        catch (TimeoutException)
        {
            var watched = await tenant.GetStringAsync("/api/v1/healing/machines");
            throw new TimeoutException($"the watchdog did not start the dead sandbox again: its history is [{history}]; the watchdog knows {watched}");
        }
        await Eventually.TrueAsync(async () =>
        {
            var audit = await AuditTypesAsync(tenant, id);
            return audit.Contains("HealingRequested") && audit.Contains("HealingAttempted");
        }, Patience, "the watchdog's actions are in the audit log");

        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
    }

    [Fact]
    public async Task A_machine_that_keeps_failing_is_left_failed_after_the_maximum_of_attempts()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        Assert.Equal(HttpStatusCode.OK, (await tenant.PutAsJsonAsync("/api/v1/healing/policy", QuickPolicy)).StatusCode);
        var id = await tenant.CreateMachineAsync(new { name = "doomed", kind = "sandbox", vcpus = 1, memoryMiB = 64, command = new[] { "/bin/sh", "-c", "exit 3" } });

        try
        {
            await Eventually.TrueAsync(async () => (await AuditTypesAsync(tenant, id)).Contains("HealingAbandoned"), Patience, "the watchdog gives up");
        }
        catch (TimeoutException)
        {
            var events = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/events");
            var history = string.Join(", ", events.EnumerateArray().Select(e => $"{e.GetProperty("type").GetString()} by {e.GetProperty("actor").GetString()}"));
            throw new TimeoutException($"the watchdog did not give up: the machine's history is [{history}]; its audit trail [{string.Join(", ", await AuditTypesAsync(tenant, id))}]; "
                + $"the watchdog knows {await tenant.GetStringAsync("/api/v1/healing/machines")}");
        }

        var audit = await AuditTypesAsync(tenant, id);
        Assert.Equal(2, audit.Count(t => t == "HealingAttempted"));
        Assert.Equal(3, audit.Count(t => t == "MachineFailed"));
        await Task.Delay(TimeSpan.FromSeconds(1.5)); // longer than the policy's longest backoff
        Assert.Equal("failed", (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}")).GetProperty("state").GetString());
        var watched = (await tenant.GetFromJsonAsync<JsonElement>("/api/v1/healing/machines")).GetProperty("items").EnumerateArray().Single(m => m.GetProperty("machineId").GetGuid() == id);
        Assert.True(watched.GetProperty("abandoned").GetBoolean());
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
    }

    [Fact]
    public async Task A_nonsense_policy_is_refused_naming_the_field()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();

        var refused = await tenant.PutAsJsonAsync("/api/v1/healing/policy", new { enabled = true, maxAttempts = -1, initialBackoffSeconds = 5, maxBackoffSeconds = 1, resetAfterSeconds = 10 });

        var problem = await Problems.AssertAsync(refused, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        Assert.True(problem.GetProperty("errors").TryGetProperty("maxAttempts", out _));
        Assert.True(problem.GetProperty("errors").TryGetProperty("maxBackoffSeconds", out _));
    }

    private static async Task<List<string>> AuditTypesAsync(HttpClient tenant, Guid machineId) =>
        (await AuditOfAsync(tenant, machineId)).Select(e => e.GetProperty("type").GetString()!).ToList();

    /// <summary>The tenant's audit log entries about the machine, in order.</summary>
    internal static async Task<List<JsonElement>> AuditOfAsync(HttpClient tenant, Guid machineId)
    {
        var entries = new List<JsonElement>();
        string? cursor = "0";
        while (cursor is not null)
        {
            var page = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/audit?limit=1000&after={cursor}");
            entries.AddRange(page.GetProperty("items").EnumerateArray()
                .Where(e => e.GetProperty("data").TryGetProperty("machineId", out var m) && m.GetGuid() == machineId));
            cursor = page.TryGetProperty("nextCursor", out var next) ? next.GetString() : null;
        }

        return entries;
    }

    /// <summary>Kills what runs in the sandbox's cgroup, once it is in there (it joins its cgroup a moment after it counts as running).</summary>
    private static async Task KillSandboxAsync(Guid machineId)
    {
        await Eventually.TrueAsync(() => MachineTests.CgroupProcesses(machineId).Length > 0, TimeSpan.FromSeconds(10), "the sandbox is in its cgroup");
        MachineTests.KillCgroupProcesses(machineId);
    }
}
