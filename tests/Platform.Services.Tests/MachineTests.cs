using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Platform.Contracts.Provisioning;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>Machines through the gateway, run by the stack's real host agent: sandboxes, and the simulated driver.</summary>
[Collection(StackCollection.Name)]
public sealed class MachineTests(PlatformStack stack)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_sandbox_machine_goes_through_its_whole_life_and_every_step_is_an_event_and_an_operation()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();

        var created = await tenant.PostAsJsonAsync("/api/v1/machines", new { name = "life", kind = "sandbox", vcpus = 1, memoryMiB = 64, labels = new { app = "web" } });
        Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
        var accepted = await created.Content.ReadFromJsonAsync<JsonElement>();
        var id = accepted.GetProperty("id").GetGuid();
        Assert.Equal($"/api/v1/operations/{accepted.GetProperty("operationId").GetGuid()}", created.Headers.Location!.OriginalString);

        var running = await tenant.WaitForMachineAsync(id, "running");
        Assert.Equal("sandbox", running.GetProperty("driver").GetString());
        Assert.Equal("sandbox-host", running.GetProperty("template").GetProperty("name").GetString());
        Assert.Equal("web", running.GetProperty("labels").GetProperty("app").GetString());
        var operation = await tenant.GetFromJsonAsync<JsonElement>(created.Headers.Location);
        Assert.Equal(("create", "succeeded"), (operation.GetProperty("type").GetString(), operation.GetProperty("status").GetString()));

        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/stop");
        await tenant.WaitForMachineAsync(id, "stopped");
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/start");
        await tenant.WaitForMachineAsync(id, "running");
        var restart = await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/restart");
        await Eventually.TrueAsync(async () => (await tenant.GetFromJsonAsync<JsonElement>(restart)).GetProperty("status").GetString() == "succeeded",
            Patience, "the restart completes");
        var destroy = await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
        Assert.Equal("succeeded", (await tenant.GetFromJsonAsync<JsonElement>(destroy)).GetProperty("status").GetString());

        var history = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/events");
        Assert.Equal(
            ["MachineRequested", "MachineRunning", "MachineStopRequested", "MachineStopped", "MachineStartRequested", "MachineRunning",
             "MachineRestartRequested", "MachineRunning", "MachineDestroyRequested", "MachineDestroyed"],
            history.EnumerateArray().Select(e => e.GetProperty("type").GetString()).Where(t => t != "MachineStepCompleted"));
        // Creating and destroying take steps beyond the host, each recorded as it is done.
        Assert.Equal(
            ["quota", "network", "launch", "registration", "unregister", "tear-down", "release-network", "release-quota"],
            history.EnumerateArray().Where(e => e.GetProperty("type").GetString() == "MachineStepCompleted").Select(e => e.GetProperty("data").GetProperty("step").GetString()));
        Assert.Equal(Enumerable.Range(1, history.GetArrayLength()).Select(v => (long)v), history.EnumerateArray().Select(e => e.GetProperty("version").GetInt64()));
        Assert.DoesNotContain(id.ToString(), await tenant.GetStringAsync("/api/v1/machines"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_request_the_state_does_not_allow_is_a_409_and_a_stale_etag_is_a_412()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var id = await tenant.CreateMachineAsync(new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64 });
        await tenant.WaitForMachineAsync(id, "running");

        var start = await Problems.AssertAsync(await tenant.PostAsync($"/api/v1/machines/{id}/start", null), HttpStatusCode.Conflict, "urn:platform:problem:illegal-transition");
        Assert.Equal("running", start.GetProperty("state").GetString());

        var read = await tenant.GetAsync($"/api/v1/machines/{id}");
        var etag = read.Headers.ETag!.Tag;
        using var stale = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/machines/{id}/stop");
        stale.Headers.TryAddWithoutValidation("If-Match", "\"1\"");
        Assert.NotEqual("\"1\"", etag);
        await Problems.AssertAsync(await tenant.SendAsync(stale), HttpStatusCode.PreconditionFailed, "urn:platform:problem:precondition-failed");
        using var current = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/machines/{id}/stop");
        current.Headers.TryAddWithoutValidation("If-Match", etag);
        Assert.Equal(HttpStatusCode.Accepted, (await tenant.SendAsync(current)).StatusCode);
        await tenant.WaitForMachineAsync(id, "stopped");
        await Problems.AssertAsync(await tenant.PostAsync($"/api/v1/machines/{id}/stop", null), HttpStatusCode.Conflict, "urn:platform:problem:illegal-transition");
    }

    [Fact]
    public async Task The_etag_of_a_machine_made_with_an_idempotency_key_and_run_commands_in_is_its_streams_version_and_if_match_takes_it()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        using var create = new HttpRequestMessage(HttpMethod.Post, "/api/v1/machines") { Content = JsonContent.Create(new { kind = "sandbox", vcpus = 1, memoryMiB = 64 }) };
        create.Headers.Add("Idempotency-Key", "etag-" + Guid.NewGuid().ToString("N"));
        var id = (await (await tenant.SendAsync(create)).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        await tenant.WaitForMachineAsync(id, "running");
        await tenant.ExecAsync(id, new { command = new[] { "true" } });

        var lastVersion = 0L;
        var etag = "";
        await Eventually.TrueAsync(async () =>
        {
            var read = await tenant.GetAsync($"/api/v1/machines/{id}");
            etag = read.Headers.ETag!.Tag;
            lastVersion = (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/events")).EnumerateArray().Last().GetProperty("version").GetInt64();
            return etag == $"\"{lastVersion}\"";
        }, TimeSpan.FromSeconds(10), "the ETag is the stream's last version (the command's record included)");
        using var stop = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/machines/{id}/stop");
        stop.Headers.TryAddWithoutValidation("If-Match", etag);
        var stopped = await tenant.SendAsync(stop);
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");

        Assert.Equal(HttpStatusCode.Accepted, stopped.StatusCode);
    }

    [Fact]
    public async Task A_sandbox_is_recreated_from_running_and_from_stopped_at_the_address_it_had()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var id = await tenant.CreateMachineAsync(new { name = "renewed", kind = "sandbox", vcpus = 1, memoryMiB = 64 });
        var address = (await tenant.WaitForMachineAsync(id, "running")).GetProperty("network").GetProperty("ip").GetString();

        var fromRunning = await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/recreate");
        await tenant.WaitForMachineAsync(id, "running");
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/stop");
        await tenant.WaitForMachineAsync(id, "stopped");
        var fromStopped = await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/recreate");
        var running = await tenant.WaitForMachineAsync(id, "running");

        Assert.Equal(address, running.GetProperty("network").GetProperty("ip").GetString());
        foreach (var operation in new[] { fromRunning, fromStopped })
        {
            var done = await tenant.GetFromJsonAsync<JsonElement>(operation);
            Assert.Equal(("recreate", "succeeded"), (done.GetProperty("type").GetString(), done.GetProperty("status").GetString()));
        }

        var history = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/events");
        Assert.Equal(
            ["MachineRequested", "MachineRunning", "MachineRecreateRequested", "MachineRunning", "MachineStopRequested", "MachineStopped", "MachineRecreateRequested", "MachineRunning"],
            history.EnumerateArray().Select(e => e.GetProperty("type").GetString()).Where(t => t != "MachineStepCompleted"));
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
    }

    [Fact]
    public async Task A_machine_whose_creation_failed_cannot_be_recreated()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var id = await tenant.CreateMachineAsync(new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64, command = new[] { "simulated-launch-failure" } });
        await tenant.WaitForMachineAsync(id, "failed");

        var refused = await Problems.AssertAsync(await tenant.PostAsync($"/api/v1/machines/{id}/recreate", null), HttpStatusCode.Conflict, "urn:platform:problem:illegal-transition");

        Assert.Equal(("failed", "recreate"), (refused.GetProperty("state").GetString(), refused.GetProperty("action").GetString()));
        Assert.Contains("creation failed at the launch step", refused.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
    }

    [Fact]
    public async Task A_recreate_sent_over_the_bus_is_recorded_with_its_sender_as_actor_and_a_repeat_of_its_operation_changes_nothing()
    {
        using var admin = await stack.AdminAsync();
        var (tenantId, tenant) = await admin.CreateTenantWithAdminAsync();
        var id = await tenant.CreateMachineAsync(new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64 });
        await tenant.WaitForMachineAsync(id, "running");
        await using var bus = await TestBus.StartAsync(stack.Environment.VirtualHost, "recreate-test", _ => { }, _ => { });
        var recreate = new RecreateMachine(id, tenantId, Guid.CreateVersion7(), "service:test:watchdog");

        await bus.Bus.Publish(recreate);
        await Eventually.TrueAsync(async () => await OperationStatusAsync(tenant, recreate.OperationId) == "succeeded", Patience, "the recreate sent over the bus completes");
        await bus.Bus.Publish(recreate);
        await Eventually.TrueAsync(() => stack.Service("provisioning").Output.Any(l => l.Contains(id.ToString(), StringComparison.Ordinal) && l.Contains("changed nothing", StringComparison.Ordinal)),
            Patience, "provisioning handles the repeat");

        var history = (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/events")).EnumerateArray().Where(e => e.GetProperty("type").GetString() != "MachineStepCompleted").ToList();
        Assert.Equal(["MachineRequested", "MachineRunning", "MachineRecreateRequested", "MachineRunning"], history.Select(e => e.GetProperty("type").GetString()));
        Assert.Equal("service:test:watchdog", history[2].GetProperty("actor").GetString());
        Assert.Equal(recreate.OperationId, history[2].GetProperty("data").GetProperty("operationId").GetGuid());
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
    }

    [Theory]
    [InlineData("""{"kind":"sandbox","vcpus":1,"memoryMiB":-64}""", 422, "memoryMiB")]
    [InlineData("""{"kind":"sandbox","vcpus":1,"memoryMiB":64,"diskMiB":10485760}""", 422, "diskMiB")]
    [InlineData("""{"kind":"mainframe","vcpus":1,"memoryMiB":64}""", 422, "kind")]
    [InlineData("""{"kind":"sandbox","vcpus":1,"memoryMiB":64,"template":"no-such-template"}""", 422, "template")]
    [InlineData("""{"kind":"sandbox","vcpus":1,"memoryMiB":64,"name":"Not_A_DNS_Name"}""", 422, "name")]
    [InlineData("""{"kind":"sandbox","vcpus":1000,"memoryMiB":64}""", 422, "vcpus")]
    [InlineData("""{"kind":"sandbox","vcpus":1,"memoryMiB":64,"boot":"sideways"}""", 422, "boot")]
    [InlineData("""{"kind":"sandbox","vcpus":1,"memoryMiB":""", 400, null)]
    [InlineData("""{"kind":"sandbox","vcpus":"one","memoryMiB":64}""", 400, null)]
    public async Task Bad_input_is_a_problem_naming_the_field_and_creates_nothing(string body, int status, string? field)
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();

        var response = await tenant.PostAsync("/api/v1/machines", new StringContent(body, Encoding.UTF8, "application/json"));

        var problem = await Problems.AssertAsync(response, (HttpStatusCode)status, status == 400 ? "urn:platform:problem:malformed-request" : "urn:platform:problem:validation-failed");
        if (field is not null)
        {
            Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), $"the problem names {field}: {problem}");
        }

        var list = await tenant.GetFromJsonAsync<JsonElement>("/api/v1/machines");
        Assert.Empty(list.GetProperty("items").EnumerateArray());
    }

    [Fact]
    public async Task A_repeated_request_with_the_same_idempotency_key_creates_one_machine()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var body = new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64 };

        var first = await PostWithKeyAsync(tenant, "key-1", body);
        var again = await PostWithKeyAsync(tenant, "key-1", body);
        var different = await PostWithKeyAsync(tenant, "key-1", body with { memoryMiB = 128 });

        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, again.StatusCode);
        Assert.Equal((await first.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid(), (await again.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid());
        await Problems.AssertAsync(different, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        Assert.Single((await tenant.GetFromJsonAsync<JsonElement>("/api/v1/machines")).GetProperty("items").EnumerateArray());
    }

    [Fact]
    public async Task A_sandbox_whose_command_fails_or_outgrows_its_memory_is_failed_with_the_reason()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var failing = await tenant.CreateMachineAsync(new { kind = "sandbox", vcpus = 1, memoryMiB = 64, command = new[] { "/bin/sh", "-c", "echo broken >&2; exit 7" } });
        var hog = await tenant.CreateMachineAsync(new { kind = "sandbox", vcpus = 1, memoryMiB = 32, command = new[] { "/usr/bin/python3", "-c", "x = bytearray(256 * 1024 * 1024)" } });
        var finishing = await tenant.CreateMachineAsync(new { kind = "sandbox", vcpus = 1, memoryMiB = 64, command = new[] { "/bin/true" } });

        var failed = await tenant.WaitForMachineAsync(failing, "failed");
        Assert.Equal(7, failed.GetProperty("exitCode").GetInt32());
        Assert.Contains("broken", failed.GetProperty("lastError").GetString(), StringComparison.Ordinal);
        Assert.Contains("memory limit", (await tenant.WaitForMachineAsync(hog, "failed")).GetProperty("lastError").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, (await tenant.WaitForMachineAsync(finishing, "stopped")).GetProperty("exitCode").GetInt32());

        var waitingInVain = await tenant.GetAsync($"/api/v1/machines/{failing}/wait?state=running&timeout=5s");
        await Problems.AssertAsync(waitingInVain, HttpStatusCode.Conflict, "urn:platform:problem:machine-failed");
        foreach (var id in new[] { failing, hog, finishing })
        {
            await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
            await tenant.WaitForMachineAsync(id, "destroyed");
        }
    }

    [Fact]
    public async Task Waiting_past_the_timeout_is_a_408_and_listing_filters_by_state_and_label_in_pages()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var ids = new List<Guid>();
        for (var i = 0; i < 5; i++)
        {
            ids.Add(await tenant.CreateMachineAsync(new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64, labels = new Dictionary<string, string> { ["tier"] = i % 2 == 0 ? "even" : "odd" } }));
        }

        foreach (var id in ids)
        {
            await tenant.WaitForMachineAsync(id, "running");
        }

        await Problems.AssertAsync(await tenant.GetAsync($"/api/v1/machines/{ids[0]}/wait?state=stopped&timeout=300ms"), HttpStatusCode.RequestTimeout, "urn:platform:problem:request-timeout");
        await Problems.AssertAsync(await tenant.GetAsync($"/api/v1/machines/{ids[0]}/wait?timeout=forever"), HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");

        var even = await tenant.GetFromJsonAsync<JsonElement>("/api/v1/machines?label=tier=even&state=running");
        Assert.Equal(3, even.GetProperty("items").GetArrayLength());
        var first = await tenant.GetFromJsonAsync<JsonElement>("/api/v1/machines?limit=2");
        var second = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines?limit=2&cursor={first.GetProperty("nextCursor").GetString()}");
        var third = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines?limit=2&cursor={second.GetProperty("nextCursor").GetString()}");
        Assert.Equal(ids, new[] { first, second, third }.SelectMany(p => p.GetProperty("items").EnumerateArray()).Select(m => m.GetProperty("id").GetGuid()));
        Assert.False(third.TryGetProperty("nextCursor", out _));
    }

    [Fact]
    public async Task The_host_reports_its_capacity_and_templates_and_placement_refuses_past_the_host_guardrails()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var host = (await admin.GetFromJsonAsync<JsonElement>("/api/v1/hosts")).EnumerateArray().Single();
        Assert.Contains("sandbox", host.GetProperty("drivers").EnumerateArray().Select(d => d.GetProperty("name").GetString()));
        Assert.Contains("sandbox-host", (await tenant.GetStringAsync("/api/v1/templates")));
        await Problems.AssertAsync(await tenant.GetAsync("/api/v1/hosts"), HttpStatusCode.Forbidden, "urn:platform:problem:forbidden");

        var memory = host.GetProperty("memoryMiB").GetInt32();
        var guardrails = await admin.GetFromJsonAsync<JsonElement>("/api/v1/governance/guardrails");
        try
        {
            await admin.PutAsJsonAsync("/api/v1/governance/guardrails", new { reservedHostMemoryMiB = memory - 100, maxMachinesPerHost = 64, maxVcpuOvercommit = 4.0 });
            await Eventually.TrueAsync(async () =>
            {
                var refused = await tenant.PostAsJsonAsync("/api/v1/machines", new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 4096 });
                if (refused.StatusCode == HttpStatusCode.Accepted)
                {
                    await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{(await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid()}");
                    return false;
                }

                var problem = await Problems.AssertAsync(refused, HttpStatusCode.Conflict, "urn:platform:problem:placement-refused");
                return problem.GetProperty("detail").GetString()!.Contains("reserved for the host", StringComparison.Ordinal);
            }, Patience, "placement applies the new guardrails");
        }
        finally
        {
            await admin.PutAsJsonAsync("/api/v1/governance/guardrails", guardrails);
        }
    }

    [Fact]
    public async Task After_the_host_agent_crashes_its_running_machine_is_adopted_and_one_that_ended_meanwhile_is_failed_and_starts_again()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var survivor = await tenant.CreateMachineAsync(new { name = "survivor", kind = "sandbox", vcpus = 1, memoryMiB = 64 });
        var casualty = await tenant.CreateMachineAsync(new { name = "casualty", kind = "sandbox", vcpus = 1, memoryMiB = 64 });
        await tenant.WaitForMachineAsync(survivor, "running");
        await tenant.WaitForMachineAsync(casualty, "running");
        // Running is reported once the sandbox's first process runs; its start (the id-map handshake, bwrap's fork) may still add one.
        var survivorProcesses = CgroupProcesses(survivor);
        await Eventually.TrueAsync(async () =>
        {
            await Task.Delay(300);
            var again = CgroupProcesses(survivor);
            var settled = again.Length > 0 && again.SequenceEqual(survivorProcesses);
            survivorProcesses = again;
            return settled;
        }, Patience, "the survivor's processes have settled");

        await stack.CrashAndRestartHostAgentAsync(whileDown: () =>
        {
            // Ends while no agent watches it: only its cgroup's processes, as an outside kill would.
            KillCgroupProcesses(casualty);
        });

        var failed = await tenant.WaitForMachineAsync(casualty, "failed");
        Assert.Contains("ended while the host agent was not running", failed.GetProperty("lastError").GetString(), StringComparison.Ordinal);
        Assert.Empty(CgroupProcesses(casualty));
        Assert.Equal("running", (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{survivor}")).GetProperty("state").GetString());
        Assert.Equal(survivorProcesses, CgroupProcesses(survivor));
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{casualty}/start");
        await tenant.WaitForMachineAsync(casualty, "running");
        foreach (var id in new[] { survivor, casualty })
        {
            await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
            await tenant.WaitForMachineAsync(id, "destroyed");
            Assert.Empty(CgroupProcesses(id));
        }
    }

    /// <summary>Kills what runs in a sandbox's cgroup, as an outside kill would.</summary>
    internal static void KillCgroupProcesses(Guid machineId)
    {
        foreach (var pid in CgroupProcesses(machineId))
        {
            try
            {
                using var process = System.Diagnostics.Process.GetProcessById(pid);
                process.Kill();
            }
            catch (Exception exception) when (exception is ArgumentException or InvalidOperationException)
            {
                // It ended with one killed before it (bubblewrap dies with its parent, the sandbox with its init).
            }
        }
    }

    /// <summary>The processes in a sandbox's pids cgroup (v1) or its one cgroup (v2); none once it is gone.</summary>
    internal static int[] CgroupProcesses(Guid machineId)
    {
        var procs = new[] { $"/sys/fs/cgroup/pids/platform/m-{machineId:N}/cgroup.procs", $"/sys/fs/cgroup/platform/m-{machineId:N}/cgroup.procs" }.FirstOrDefault(File.Exists);
        try
        {
            return procs is null ? [] : File.ReadAllLines(procs).Where(l => l.Length > 0).Select(int.Parse).Order().ToArray();
        }
        catch (IOException)
        {
            return [];
        }
    }


    private static async Task<string?> OperationStatusAsync(HttpClient tenant, Guid operationId)
    {
        var response = await tenant.GetAsync($"/api/v1/operations/{operationId}");
        return response.IsSuccessStatusCode ? (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("status").GetString() : null;
    }

    private static async Task<HttpResponseMessage> PostWithKeyAsync(HttpClient tenant, string key, object body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/machines") { Content = JsonContent.Create(body) };
        request.Headers.Add("Idempotency-Key", key);
        return await tenant.SendAsync(request);
    }
}
