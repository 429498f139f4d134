using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>Machines' health checks with real sandboxes: probes declared at creation, the states they add up to, and healing an unhealthy machine.</summary>
[Collection(StackCollection.Name)]
public sealed class MachineHealthTests(PlatformStack stack)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private static readonly object ClosedPortProbe = new { tcp = 8080, intervalSeconds = 1, unhealthyAfter = 2 };

    [Fact]
    public async Task A_sandbox_whose_probe_port_is_closed_becomes_unhealthy_after_n_checks_and_the_change_is_in_the_audit_log()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var id = await tenant.CreateMachineAsync(new { name = "deaf", kind = "sandbox", vcpus = 1, memoryMiB = 64, probe = ClosedPortProbe });
        await tenant.WaitForMachineAsync(id, "running");

        var health = await WaitForHealthAsync(tenant, id, "unhealthy");

        var check = Assert.Single(health.GetProperty("checks").EnumerateArray());
        Assert.Equal("tcp:8080", check.GetProperty("name").GetString());
        Assert.False(check.GetProperty("healthy").GetBoolean());
        Assert.True(check.GetProperty("consecutiveFailures").GetInt32() >= 2);
        Assert.Contains("tcp:8080 failed", health.GetProperty("reason").GetString(), StringComparison.Ordinal);
        await Eventually.TrueAsync(async () => (await HealthChangesAsync(tenant, id)).Contains("unhealthy"), Patience, "the change is in the audit log");
        Assert.Equal(["degraded", "unhealthy"], await HealthChangesAsync(tenant, id));
        Assert.Equal("running", (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}")).GetProperty("state").GetString());

        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
    }

    [Fact]
    public async Task An_unhealthy_sandbox_is_restarted_by_the_watchdog_when_its_tenants_policy_heals()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        Assert.Equal(HttpStatusCode.OK, (await tenant.PutAsJsonAsync("/api/v1/healing/policy",
            new { enabled = true, maxAttempts = 1, initialBackoffSeconds = 0.2, maxBackoffSeconds = 1, resetAfterSeconds = 600 })).StatusCode);
        var id = await tenant.CreateMachineAsync(new { name = "restarted", kind = "sandbox", vcpus = 1, memoryMiB = 64, probe = ClosedPortProbe });
        await tenant.WaitForMachineAsync(id, "running");

        await Eventually.TrueAsync(async () =>
        {
            var events = (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/events")).EnumerateArray().ToList();
            var restart = events.FindIndex(e => e.GetProperty("type").GetString() == "MachineRestartRequested" && e.GetProperty("actor").GetString() == "service:telemetry:healing");
            return restart >= 0 && events.Skip(restart).Any(e => e.GetProperty("type").GetString() == "MachineRunning");
        }, Patience, "the watchdog restarts the unhealthy sandbox and it runs again");
        await Eventually.TrueAsync(async () => (await HealingTypesAsync(tenant, id)) is var types && types.Contains("HealingRequested") && types.Contains("HealingAttempted"),
            Patience, "the watchdog's actions are in the audit log");
        // Still deaf after its restart: with one attempt allowed, the watchdog gives up rather than restarting it forever.
        await Eventually.TrueAsync(async () => (await HealingTypesAsync(tenant, id)).Contains("HealingAbandoned"), Patience, "the watchdog gives up after its one attempt");

        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
    }

    [Fact]
    public async Task A_sandbox_that_answers_its_http_probe_is_healthy()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var id = await tenant.CreateMachineAsync(new
        {
            name = "web",
            kind = "sandbox",
            vcpus = 1,
            memoryMiB = 128,
            command = new[] { "/usr/bin/python3", "-m", "http.server", "8080", "--bind", "127.0.0.1" },
            probe = new { http = new { port = 8080, path = "/" }, intervalSeconds = 1, unhealthyAfter = 3 },
        });
        await tenant.WaitForMachineAsync(id, "running");

        var health = await WaitForHealthAsync(tenant, id, "healthy");

        MachineMetricsTests.AssertDocumented("machine-health", health, "checks");
        var check = Assert.Single(health.GetProperty("checks").EnumerateArray());
        Assert.Equal("http:8080/", check.GetProperty("name").GetString());
        Assert.True(check.GetProperty("healthy").GetBoolean());
        Assert.Equal(0, check.GetProperty("consecutiveFailures").GetInt32());
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.Equal("healthy", (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/health")).GetProperty("state").GetString());

        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
    }

    [Fact]
    public async Task A_micro_vm_answers_its_guest_agent_heartbeat_and_reports_its_qemus_usage()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var since = DateTimeOffset.UtcNow.AddSeconds(-5);
        var id = await tenant.CreateMachineAsync(new { name = "beating", kind = "microvm", vcpus = 1, memoryMiB = 128 });
        await tenant.WaitForMachineAsync(id, "running");

        var health = await WaitForHealthAsync(tenant, id, "healthy");

        Assert.Equal("heartbeat", Assert.Single(health.GetProperty("checks").EnumerateArray()).GetProperty("name").GetString());
        JsonElement point = default;
        await Eventually.TrueAsync(async () =>
        {
            var series = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/metrics?from={MachineMetricsTests.Iso(since)}&step=1s");
            point = series.GetProperty("points").EnumerateArray().LastOrDefault();
            return point.ValueKind == JsonValueKind.Object;
        }, Patience, "the micro-VM's QEMU is sampled");
        Assert.True(point.GetProperty("memoryBytes").GetInt64() > 0);
        Assert.Equal(128L * 1024 * 1024, point.GetProperty("memoryLimitBytes").GetInt64());
        Assert.False(point.TryGetProperty("processes", out _), "a guest's processes are not counted");

        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
    }

    [Theory]
    [InlineData("""{"tcp":0}""")]
    [InlineData("""{"tcp":80,"http":{"port":80,"path":"/"}}""")]
    [InlineData("""{"http":{"port":80,"path":"healthz"}}""")]
    [InlineData("""{"tcp":80,"unhealthyAfter":0}""")]
    [InlineData("""{"tcp":80,"intervalSeconds":86400}""")]
    public async Task A_nonsense_probe_is_refused_naming_probe(string probe)
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();

        var response = await tenant.PostAsync("/api/v1/machines",
            new StringContent($$"""{"kind":"sandbox","vcpus":1,"memoryMiB":64,"probe":{{probe}}}""", Encoding.UTF8, "application/json"));

        var problem = await Problems.AssertAsync(response, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        Assert.True(problem.GetProperty("errors").TryGetProperty("probe", out _), $"the problem names probe: {problem}");
    }

    private static async Task<JsonElement> WaitForHealthAsync(HttpClient tenant, Guid id, string state)
    {
        var health = default(JsonElement);
        try
        {
            await Eventually.TrueAsync(async () =>
            {
                var response = await tenant.GetAsync($"/api/v1/machines/{id}/health");
                health = response.StatusCode == HttpStatusCode.OK ? await response.Content.ReadFromJsonAsync<JsonElement>() : default;
                return health.ValueKind == JsonValueKind.Object && health.GetProperty("state").GetString() == state;
            }, Patience, $"the machine becomes {state}");
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"the machine did not become {state}: its health is {health}");
        }

        return health;
    }

    /// <summary>The states of the machine's <c>MachineHealthChanged</c> events in the audit log, in order.</summary>
    private static async Task<List<string>> HealthChangesAsync(HttpClient tenant, Guid id)
    {
        var page = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/audit?type=MachineHealthChanged&stream=health-{id}&limit=1000");
        return page.GetProperty("items").EnumerateArray().Select(e => e.GetProperty("data").GetProperty("state").GetString()!).ToList();
    }

    private static async Task<List<string>> HealingTypesAsync(HttpClient tenant, Guid id)
    {
        var page = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/audit?stream=healing-{id}&limit=1000");
        return page.GetProperty("items").EnumerateArray().Select(e => e.GetProperty("type").GetString()!).ToList();
    }
}
