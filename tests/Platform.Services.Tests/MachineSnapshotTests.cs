using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>Snapshots of machines, machines made from them, and forks, through the gateway on the stack's real host agent.</summary>
[Collection(StackCollection.Name)]
public sealed class MachineSnapshotTests(PlatformStack stack)
{
    [Fact]
    public async Task A_running_micro_vm_forked_into_five_answers_as_five_machines_of_their_own_with_the_file_it_wrote_and_runs_on_itself()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        tenant.Timeout = TimeSpan.FromSeconds(120);
        var parent = await tenant.CreateMachineAsync(new { name = "parent", kind = "microvm", vcpus = 1, memoryMiB = 128 });
        var parentView = await tenant.WaitForMachineAsync(parent, "running");
        await tenant.ExecAsync(parent, new { command = new[] { "/bin/sh", "-c", "echo written-before-the-fork > /scratch/kept" } });

        var fork = await tenant.PostAsJsonAsync($"/api/v1/machines/{parent}/fork", new { count = 5 });
        Assert.True(fork.StatusCode == HttpStatusCode.Accepted, await fork.Content.ReadAsStringAsync());
        var accepted = await fork.Content.ReadFromJsonAsync<JsonElement>();
        var operation = await tenant.WaitForOperationAsync(fork.Headers.Location!);
        var forks = accepted.GetProperty("machineIds").EnumerateArray().Select(e => e.GetGuid()).ToList();
        var seen = new List<(string MachineId, string Hostname, string Kept, string Ip, string Mac)>();
        foreach (var id in forks)
        {
            var machine = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}");
            var inside = (await tenant.ExecAsync(id, new { command = new[] { "/bin/sh", "-c", "cat /etc/machine-id; hostname; cat /scratch/kept; cat /sys/class/net/eth0/address" } }))
                .GetProperty("stdout").GetString()!.Split('\n');
            seen.Add((inside[0], inside[1], inside[2], machine.GetProperty("network").GetProperty("ip").GetString()!, inside[3]));
            Assert.Equal(("running", "clone", accepted.GetProperty("snapshotId").GetGuid()), (machine.GetProperty("state").GetString(), machine.GetProperty("bootedFrom").GetString(), machine.GetProperty("fromSnapshot").GetGuid()));
            Assert.Equal($"{id:N}", inside[0]);
            Assert.Equal(machine.GetProperty("name").GetString(), inside[1]);
            Assert.Equal(machine.GetProperty("network").GetProperty("mac").GetString(), inside[3]);
        }

        var parentInside = (await tenant.ExecAsync(parent, new { command = new[] { "/bin/sh", "-c", "cat /etc/machine-id; hostname" } })).GetProperty("stdout").GetString();
        var snapshotId = accepted.GetProperty("snapshotId").GetGuid();
        var inUse = await tenant.DeleteAsync($"/api/v1/snapshots/{snapshotId}");

        DocumentationTests.AssertSameShape(DocumentationTests.Example(Path.Combine("api", "machines.md"), "fork-operation"), operation);
        Assert.Equal("succeeded", operation.GetProperty("status").GetString());
        Assert.Equal(forks, operation.GetProperty("forks").EnumerateArray().Select(f => f.GetProperty("machineId").GetGuid()));
        Assert.All(operation.GetProperty("forks").EnumerateArray(), f => Assert.Equal("succeeded", f.GetProperty("status").GetString()));
        Assert.Equal(5, seen.Select(s => s.MachineId).Distinct().Count());
        Assert.Equal(5, seen.Select(s => s.Hostname).Distinct().Count());
        Assert.Equal(5, seen.Select(s => s.Ip).Append(parentView.GetProperty("network").GetProperty("ip").GetString()).Distinct().Count() - 1);
        Assert.Equal(5, seen.Select(s => s.Mac).Distinct().Count());
        Assert.All(seen, s => Assert.Equal("written-before-the-fork", s.Kept));
        Assert.Equal($"{parent:N}\nparent\n", parentInside);
        await Problems.AssertAsync(inUse, HttpStatusCode.Conflict, "urn:platform:problem:snapshot-in-use");

        foreach (var id in forks.Append(parent))
        {
            await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        }

        foreach (var id in forks.Append(parent))
        {
            await tenant.WaitForMachineAsync(id, "destroyed");
        }

        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/snapshots/{snapshotId}");
        await tenant.WaitForSnapshotAsync(snapshotId, "deleted");
        Assert.False(Directory.Exists(Path.Combine(stack.AgentStatePath, "snapshots", snapshotId.ToString("N"))), "the host removed the snapshot");
    }

    /// <summary>A checkpoint stops the VM's vCPUs for a moment: an agent that dies then must not leave it stopped for good.</summary>
    [Fact]
    public async Task A_micro_vm_whose_agent_died_while_its_vcpus_were_stopped_for_a_checkpoint_runs_on_after_the_agent_restarts()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        tenant.Timeout = TimeSpan.FromSeconds(60);
        var id = await tenant.CreateMachineAsync(new { kind = "microvm", vcpus = 1, memoryMiB = 128 });
        await tenant.WaitForMachineAsync(id, "running");
        var qmp = Path.Combine(stack.MicroVmRunPath, "vm", id.ToString("N"), "qmp.sock");

        await stack.CrashAndRestartHostAgentAsync(whileDown: () => QmpAsync(qmp, "stop").GetAwaiter().GetResult());
        await Eventually.TrueAsync(() => stack.HostAgent!.Output.Any(line => line.Contains(id.ToString(), StringComparison.Ordinal) && line.Contains("adopted", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(60), "the restarted agent adopts the micro-VM");
        var answer = "";
        await Eventually.TrueAsync(async () =>
        {
            var exec = await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/exec", new { command = new[] { "echo", "runs on" } });
            answer = exec.IsSuccessStatusCode ? (await exec.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("stdout").GetString()! : "";
            return exec.IsSuccessStatusCode;
        }, TimeSpan.FromSeconds(30), "the restarted agent answers");
        var state = (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}")).GetProperty("state").GetString();
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");

        Assert.Equal(("running", "runs on\n"), (state, answer));
    }

    /// <summary>The host is down longer than a snapshot may wait: it fails, gives its quota back, and what the host saves late goes.</summary>
    [Fact]
    public async Task A_snapshot_whose_host_is_down_too_long_fails_gives_its_quota_back_and_the_late_save_is_removed_from_the_host()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        tenant.Timeout = TimeSpan.FromSeconds(60);
        var id = await tenant.CreateMachineAsync(new { kind = "sandbox", vcpus = 1, memoryMiB = 64 });
        await tenant.WaitForMachineAsync(id, "running");
        Guid snapshotId = default;
        JsonElement failed = default;

        await stack.CrashAndRestartHostAgentAsync(whileDown: () =>
        {
            var taken = tenant.PostAsJsonAsync($"/api/v1/machines/{id}/snapshots", new { }).GetAwaiter().GetResult();
            snapshotId = taken.Content.ReadFromJsonAsync<JsonElement>().GetAwaiter().GetResult().GetProperty("id").GetGuid();
            failed = tenant.WaitForSnapshotAsync(snapshotId, "failed").GetAwaiter().GetResult();
        });
        var kept = Path.Combine(stack.AgentStatePath, "snapshots", snapshotId.ToString("N"));
        await Eventually.TrueAsync(() => Task.FromResult(stack.HostAgent!.Output.Any(l => l.Contains(snapshotId.ToString(), StringComparison.Ordinal) && l.Contains("saved", StringComparison.Ordinal))),
            TimeSpan.FromSeconds(60), "the restarted agent saves the snapshot it was asked for");
        await Eventually.TrueAsync(() => Task.FromResult(!Directory.Exists(kept)), TimeSpan.FromSeconds(30), "the late save is removed from the host");
        var quota = await tenant.GetFromJsonAsync<JsonElement>("/api/v1/quotas");
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");

        Assert.Equal("its host did not save it within 15 seconds", failed.GetProperty("error").GetString());
        Assert.Equal(0, quota.GetProperty("used").GetProperty("snapshots").GetInt32());
        Assert.Equal("failed", (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/snapshots/{snapshotId}")).GetProperty("state").GetString());
    }

    /// <summary>One QMP command on a VM's socket (only one client at a time: its agent's is gone).</summary>
    private static async Task QmpAsync(string socketPath, string command)
    {
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        await socket.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(socketPath)).WaitAsync(TimeSpan.FromSeconds(10));
        using var stream = new System.Net.Sockets.NetworkStream(socket);
        using var reader = new StreamReader(stream);
        await using var writer = new StreamWriter(stream) { AutoFlush = true };
        await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10));
        foreach (var execute in new[] { "qmp_capabilities", command })
        {
            await writer.WriteLineAsync($"{{\"execute\": \"{execute}\"}}");
            while (await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)) is { } line && !line.Contains("\"return\"", StringComparison.Ordinal))
            {
            }
        }
    }

    [Fact]
    public async Task A_machine_made_from_a_paused_sandboxs_snapshot_has_its_files_and_the_snapshot_counts_against_the_quota_until_deleted()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        tenant.Timeout = TimeSpan.FromSeconds(60);
        var source = await tenant.CreateMachineAsync(new { kind = "sandbox", vcpus = 1, memoryMiB = 64, labels = new Dictionary<string, string> { ["app"] = "web" } });
        await tenant.WaitForMachineAsync(source, "running");
        await tenant.ExecAsync(source, new { command = new[] { "/bin/sh", "-c", "mkdir -p data && echo from-the-snapshot > data/kept" } });
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{source}/pause");
        await tenant.WaitForMachineAsync(source, "paused");

        var taken = await tenant.PostAsJsonAsync($"/api/v1/machines/{source}/snapshots", new { name = "before-upgrade" });
        Assert.True(taken.StatusCode == HttpStatusCode.Accepted, await taken.Content.ReadAsStringAsync());
        var snapshotId = (await taken.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        var ready = await tenant.WaitForSnapshotAsync(snapshotId, "ready");
        var quota = await tenant.GetFromJsonAsync<JsonElement>("/api/v1/quotas");
        var copy = await tenant.CreateMachineAsync(new { fromSnapshot = snapshotId, memoryMiB = 96 });
        var copyView = await tenant.WaitForMachineAsync(copy, "running");
        var kept = (await tenant.ExecAsync(copy, new { command = new[] { "cat", "data/kept" } })).GetProperty("stdout").GetString();
        var listed = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/snapshots?machineId={source}");

        DocumentationTests.AssertSameShape(DocumentationTests.Example(Path.Combine("api", "machines.md"), "snapshot"), ready);
        Assert.Equal(("before-upgrade", "filesystem", "paused"), (ready.GetProperty("name").GetString(), ready.GetProperty("contents").GetString(),
            (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{source}")).GetProperty("state").GetString()));
        Assert.True(ready.GetProperty("sizeBytes").GetInt64() > 0);
        Assert.Equal(1, quota.GetProperty("used").GetProperty("snapshots").GetInt32());
        Assert.Equal("from-the-snapshot\n", kept);
        Assert.Equal(("sandbox", 96, "web", snapshotId), (copyView.GetProperty("kind").GetString(), copyView.GetProperty("memoryMiB").GetInt32(),
            copyView.GetProperty("labels").GetProperty("app").GetString(), copyView.GetProperty("fromSnapshot").GetGuid()));
        Assert.Equal([snapshotId], listed.GetProperty("items").EnumerateArray().Select(s => s.GetProperty("id").GetGuid()));

        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{copy}");
        await tenant.WaitForMachineAsync(copy, "destroyed");
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/snapshots/{snapshotId}");
        await tenant.WaitForSnapshotAsync(snapshotId, "deleted");
        await Eventually.TrueAsync(async () => (await tenant.GetFromJsonAsync<JsonElement>("/api/v1/quotas")).GetProperty("used").GetProperty("snapshots").GetInt32() == 0,
            TimeSpan.FromSeconds(30), "the deleted snapshot gives its quota back");
        var audited = Array.Empty<string>();
        await Eventually.TrueAsync(async () =>
        {
            audited = (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/audit?stream=snapshot-{snapshotId}")).GetProperty("items").EnumerateArray()
                .Select(e => e.GetProperty("type").GetString()!).ToArray();
            return audited.Contains("SnapshotDeleted");
        }, TimeSpan.FromSeconds(30), "the audit log records the snapshot's deletion");
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{source}");

        Assert.Equal(["SnapshotRequested", "SnapshotReady", "SnapshotDeleteRequested", "SnapshotDeleted"], audited);
    }

    [Fact]
    public async Task A_fork_whose_provisioning_crashes_midway_makes_each_of_its_machines_once_and_holds_the_quota_of_exactly_them()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        tenant.Timeout = TimeSpan.FromSeconds(120);
        var parent = await tenant.CreateMachineAsync(new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64 });
        await tenant.WaitForMachineAsync(parent, "running");

        var fork = await tenant.PostAsJsonAsync($"/api/v1/machines/{parent}/fork", new { count = 12 });
        Assert.Equal(HttpStatusCode.Accepted, fork.StatusCode);
        var beforeCrash = (await tenant.GetFromJsonAsync<JsonElement>(fork.Headers.Location!)).GetProperty("status").GetString();
        await stack.CrashAndRestartAsync("provisioning");
        var operation = await tenant.WaitForOperationAsync(fork.Headers.Location!);
        var accepted = await fork.Content.ReadFromJsonAsync<JsonElement>();
        var snapshotId = accepted.GetProperty("snapshotId").GetGuid();
        var made = (await tenant.GetFromJsonAsync<JsonElement>("/api/v1/machines?limit=500")).GetProperty("items").EnumerateArray()
            .Where(m => m.TryGetProperty("fromSnapshot", out var from) && from.GetGuid() == snapshotId).Select(m => m.GetProperty("id").GetGuid()).ToList();
        var quota = await tenant.GetFromJsonAsync<JsonElement>("/api/v1/quotas");

        Assert.Equal("pending", beforeCrash);
        Assert.Equal("succeeded", operation.GetProperty("status").GetString());
        Assert.Equal(accepted.GetProperty("machineIds").EnumerateArray().Select(e => e.GetGuid()).Order(), made.Order());
        Assert.Equal((13, 1), (quota.GetProperty("used").GetProperty("machines").GetInt32(), quota.GetProperty("used").GetProperty("snapshots").GetInt32()));
    }

    [Fact]
    public async Task Snapshots_and_forks_refuse_bad_requests_clearly_and_a_tenant_without_snapshot_quota_gets_a_failed_snapshot_that_says_why()
    {
        using var admin = await stack.AdminAsync();
        var (tenantId, tenant) = await admin.CreateTenantWithAdminAsync();
        var machine = await tenant.CreateMachineAsync(new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64 });
        await tenant.WaitForMachineAsync(machine, "running");

        var noCount = await tenant.PostAsJsonAsync($"/api/v1/machines/{machine}/fork", new { });
        var tooMany = await tenant.PostAsJsonAsync($"/api/v1/machines/{machine}/fork", new { count = 101 });
        var badName = await tenant.PostAsJsonAsync($"/api/v1/machines/{machine}/snapshots", new { name = "Not A Label" });
        var unknownSnapshot = await tenant.PostAsJsonAsync("/api/v1/machines", new { fromSnapshot = Guid.NewGuid() });
        var notAnId = await tenant.PostAsJsonAsync("/api/v1/machines", new { fromSnapshot = "yesterday" });
        var taken = await tenant.PostAsJsonAsync($"/api/v1/machines/{machine}/snapshots", new { });
        var snapshotId = (await taken.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        await tenant.WaitForSnapshotAsync(snapshotId, "ready");
        var otherKind = await tenant.PostAsJsonAsync("/api/v1/machines", new { fromSnapshot = snapshotId, kind = "microvm", template = "microvm-default" });
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{machine}/stop");
        await tenant.WaitForMachineAsync(machine, "stopped");
        var ofStopped = await tenant.PostAsJsonAsync($"/api/v1/machines/{machine}/snapshots", new { });

        Assert.Equal("count", (await Problems.AssertAsync(noCount, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed")).GetProperty("errors").EnumerateObject().Single().Name);
        await Problems.AssertAsync(tooMany, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        await Problems.AssertAsync(badName, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        await Problems.AssertAsync(unknownSnapshot, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        await Problems.AssertAsync(notAnId, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        var conflicts = (await Problems.AssertAsync(otherKind, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed")).GetProperty("errors");
        Assert.Equal(["kind", "template"], conflicts.EnumerateObject().Select(e => e.Name).Order());
        await Problems.AssertAsync(ofStopped, HttpStatusCode.Conflict, "urn:platform:problem:illegal-transition");

        var limits = new { machines = 10, vcpus = 10, memoryMiB = 10_000, diskMiB = 0, tunnels = 0, portForwards = 0, snapshots = 1 };
        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync($"/api/v1/tenants/{tenantId}/quotas", limits)).StatusCode);
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{machine}/start");
        await tenant.WaitForMachineAsync(machine, "running");
        var overQuota = await tenant.PostAsJsonAsync($"/api/v1/machines/{machine}/snapshots", new { });
        var refused = await tenant.WaitForSnapshotAsync((await overQuota.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid(), "failed");

        Assert.Equal("the tenant's snapshots quota would be 2 of 1", refused.GetProperty("error").GetString());
    }
}
