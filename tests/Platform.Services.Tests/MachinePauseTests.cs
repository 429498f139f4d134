using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>Pausing and resuming machines through the gateway: the host agent freezes them in place and lets them run on as they were.</summary>
[Collection(StackCollection.Name)]
public sealed class MachinePauseTests(PlatformStack stack)
{
    /// <summary>A counter the machine's own command keeps, ten a second.</summary>
    private static readonly string[] Counter = ["/bin/sh", "-c", "i=0; while :; do i=$((i + 1)); echo $i > /tmp/count; sleep 0.1; done"];

    [Fact]
    public async Task A_paused_sandbox_keeps_its_address_refuses_commands_and_once_resumed_counts_on_from_where_it_was()
    {
        var (tenant, id) = await RunningSandboxAsync();
        await Eventually.TrueAsync(async () => await CountAsync(tenant, id) >= 5, TimeSpan.FromSeconds(20), "the counter runs");
        var address = (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}")).GetProperty("network").GetProperty("ip").GetString();

        var beforePause = await CountAsync(tenant, id);
        var between = System.Diagnostics.Stopwatch.StartNew();
        var pause = await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/pause");
        var paused = await tenant.WaitForMachineAsync(id, "paused");
        var refusedExec = await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/exec", new { command = new[] { "true" } });
        var pausedAgain = await tenant.PostAsync($"/api/v1/machines/{id}/pause", null);
        await Task.Delay(TimeSpan.FromSeconds(3));
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/resume");
        var resumed = await tenant.WaitForMachineAsync(id, "running");
        var afterResume = await CountAsync(tenant, id);
        between.Stop();
        var resumedAgain = await tenant.PostAsync($"/api/v1/machines/{id}/resume", null);

        Assert.Equal("succeeded", (await tenant.GetFromJsonAsync<JsonElement>(pause)).GetProperty("status").GetString());
        await Problems.AssertAsync(refusedExec, HttpStatusCode.Conflict, "urn:platform:problem:machine-not-running");
        await Problems.AssertAsync(pausedAgain, HttpStatusCode.Conflict, "urn:platform:problem:illegal-transition");
        await Problems.AssertAsync(resumedAgain, HttpStatusCode.Conflict, "urn:platform:problem:illegal-transition");
        // At most ten counts a second ran between the two reads, less the three seconds or more it stood frozen (however long
        // the pause and the resume took to arrive on a busy host); a restarted counter would be back near 1.
        Assert.InRange(afterResume, beforePause, beforePause + (int)Math.Ceiling((between.Elapsed.TotalSeconds - 3) * 10) + 5);
        Assert.Equal(address, paused.GetProperty("network").GetProperty("ip").GetString());
        Assert.Equal(address, resumed.GetProperty("network").GetProperty("ip").GetString());
        var types = await tenant.MachineEventTypesAsync(id);
        Assert.Equal(["MachinePauseRequested", "MachinePaused", "MachineResumeRequested", "MachineResumed"], types.SkipWhile(t => t != "MachinePauseRequested").Where(t => t.StartsWith("MachinePause", StringComparison.Ordinal) || t.StartsWith("MachineResume", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_paused_sandbox_stays_paused_when_its_host_agent_restarts_and_resumes_afterwards()
    {
        var (tenant, id) = await RunningSandboxAsync();
        await Eventually.TrueAsync(async () => await CountAsync(tenant, id) >= 5, TimeSpan.FromSeconds(20), "the counter runs");
        var beforePause = await CountAsync(tenant, id);
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/pause");
        await tenant.WaitForMachineAsync(id, "paused");
        var eventsBefore = (await tenant.MachineEventTypesAsync(id)).Count;

        await stack.CrashAndRestartHostAgentAsync();
        await Eventually.TrueAsync(() => stack.HostAgent!.Output.Any(line => line.Contains(id.ToString(), StringComparison.Ordinal) && line.Contains("adopted", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(60), "the restarted agent adopts the paused sandbox");
        var afterRestart = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}");
        var eventsAfter = (await tenant.MachineEventTypesAsync(id)).Count;
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/resume");
        await tenant.WaitForMachineAsync(id, "running");

        // The restarted agent listens on a new port here: provisioning learns it from the agent's next report.
        var afterResume = 0;
        await Eventually.TrueAsync(async () =>
        {
            var answer = await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/exec", new { command = new[] { "cat", "/tmp/count" } });
            afterResume = answer.IsSuccessStatusCode ? int.Parse((await answer.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("stdout").GetString()!.Trim()) : 0;
            return answer.IsSuccessStatusCode;
        }, TimeSpan.FromSeconds(30), "the restarted agent answers");

        Assert.Equal("paused", afterRestart.GetProperty("state").GetString());
        Assert.Equal(eventsBefore, eventsAfter);
        Assert.True(afterResume >= beforePause, $"the counter goes on from where it was ({beforePause} → {afterResume})");
    }

    [Fact]
    public async Task A_paused_micro_vm_has_no_qemu_on_its_host_and_once_resumed_its_background_counter_goes_on_at_the_same_address()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        tenant.Timeout = TimeSpan.FromSeconds(60);
        var id = await tenant.CreateMachineAsync(new { kind = "microvm", vcpus = 1, memoryMiB = 128 });
        var running = await tenant.WaitForMachineAsync(id, "running");
        var processId = await tenant.StartInBackgroundAsync(id, Counter[0], Counter[1], Counter[2].Replace("/tmp/count", "/scratch/count", StringComparison.Ordinal));
        await Eventually.TrueAsync(async () => await CountAsync(tenant, id, "/scratch/count") >= 5, TimeSpan.FromSeconds(30), "the counter runs");
        var qemu = int.Parse(File.ReadAllText(Path.Combine(stack.MicroVmRunPath, "vm", id.ToString("N"), "qemu.pid")).Trim(), System.Globalization.CultureInfo.InvariantCulture);

        var beforePause = await CountAsync(tenant, id, "/scratch/count");
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/pause");
        var paused = await tenant.WaitForMachineAsync(id, "paused");
        var qemuGone = System.Diagnostics.Process.GetProcesses().All(p => p.Id != qemu);
        await Task.Delay(TimeSpan.FromSeconds(2));
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/resume");
        var resumed = await tenant.WaitForMachineAsync(id, "running");
        var afterResume = await CountAsync(tenant, id, "/scratch/count");
        var process = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/processes/{processId}");

        Assert.True(qemuGone, "no QEMU of it runs on the host while it is paused");
        Assert.InRange(afterResume, beforePause, beforePause + 15);
        Assert.Equal("running", process.GetProperty("state").GetString());
        var address = running.GetProperty("network").GetProperty("ip").GetString();
        Assert.Equal(address, paused.GetProperty("network").GetProperty("ip").GetString());
        Assert.Equal(address, resumed.GetProperty("network").GetProperty("ip").GetString());
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
    }

    [Fact]
    public async Task A_paused_micro_vm_stays_paused_on_disk_when_its_host_agent_restarts_and_resumes_with_its_files()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        tenant.Timeout = TimeSpan.FromSeconds(60);
        var id = await tenant.CreateMachineAsync(new { kind = "microvm", vcpus = 1, memoryMiB = 128 });
        await tenant.WaitForMachineAsync(id, "running");
        await tenant.ExecAsync(id, new { command = new[] { "/bin/sh", "-c", "echo kept-across-the-restart > /scratch/kept" } });
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/pause");
        await tenant.WaitForMachineAsync(id, "paused");
        var eventsBefore = (await tenant.MachineEventTypesAsync(id)).Count;

        await stack.CrashAndRestartHostAgentAsync();
        await Eventually.TrueAsync(() => stack.HostAgent!.Output.Any(line => line.Contains(id.ToString(), StringComparison.Ordinal) && line.Contains("adopted", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(60), "the restarted agent adopts the paused micro-VM");
        var afterRestart = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}");
        var eventsAfter = (await tenant.MachineEventTypesAsync(id)).Count;
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/resume");
        await tenant.WaitForMachineAsync(id, "running");
        var kept = "";
        await Eventually.TrueAsync(async () =>
        {
            var answer = await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/exec", new { command = new[] { "cat", "/scratch/kept" } });
            kept = answer.IsSuccessStatusCode ? (await answer.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("stdout").GetString()! : "";
            return answer.IsSuccessStatusCode;
        }, TimeSpan.FromSeconds(30), "the restarted agent answers");
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");

        Assert.Equal("paused", afterRestart.GetProperty("state").GetString());
        Assert.Equal(eventsBefore, eventsAfter);
        Assert.Equal("kept-across-the-restart\n", kept);
    }

    private async Task<(HttpClient Tenant, Guid MachineId)> RunningSandboxAsync()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        tenant.Timeout = TimeSpan.FromSeconds(60);
        var id = await tenant.CreateMachineAsync(new { kind = "sandbox", vcpus = 1, memoryMiB = 64, command = Counter });
        await tenant.WaitForMachineAsync(id, "running");
        return (tenant, id);
    }

    private static async Task<int> CountAsync(HttpClient tenant, Guid id, string file = "/tmp/count")
    {
        var result = await tenant.ExecAsync(id, new { command = new[] { "cat", file } });
        return int.TryParse(result.GetProperty("stdout").GetString()?.Trim(), out var count) ? count : 0;
    }

}
