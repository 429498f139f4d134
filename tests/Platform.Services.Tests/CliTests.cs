using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Cli;
using Platform.Hosting.Security;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>plat, the command-line client, run in-process as a user runs it, against the real stack's gateway.</summary>
[Collection(StackCollection.Name)]
public sealed class CliTests(PlatformStack stack) : IDisposable
{
    private readonly string _home = Directory.CreateTempSubdirectory("plat-test-").FullName;

    public void Dispose() => Directory.Delete(_home, recursive: true);

    [Fact]
    public async Task Plat_logs_in_creates_a_sandbox_waits_for_it_lists_it_as_json_runs_copies_reads_its_logs_and_destroys_it()
    {
        using var admin = await stack.AdminAsync();
        var tenant = await admin.CreateTenantAsync();
        var username = $"cli-{Guid.NewGuid():N}"[..16];
        Assert.Equal(HttpStatusCode.Created, (await admin.PostAsJsonAsync($"/api/v1/tenants/{tenant}/users", new { username, password = PlatformApi.TenantAdminPassword, role = Roles.TenantAdmin })).StatusCode);

        var login = await PlatAsync(["login", "--url", admin.BaseAddress!.ToString(), "--username", username, "--password-stdin"], PlatformApi.TenantAdminPassword + "\n");
        var created = await PlatAsync(["machines", "create", "--kind", "sandbox", "--memory", "64", "--name", "cli-box", "--ttl", "1h", "--idle", "1h:stop", "--wait", "-o", "json",
            "--", "/bin/sh", "-c", "echo from-main; exec sleep 600"]);
        var listed = await PlatAsync(["machines", "list", "--output", "json"]);
        var table = await PlatAsync(["machines", "ls"]);
        var exec = await PlatAsync(["exec", "cli-box", "--env", "WHO=plat", "--", "/bin/sh", "-c", "echo out $WHO; echo err >&2; exit 3"]);
        var input = await PlatAsync(["exec", "-i", "cli-box", "--", "tr", "a-z", "A-Z"], "shout\n");
        var terminal = await PlatAsync(["exec", "-t", "cli-box", "--", "/bin/sh", "-c", "read line; echo \"got $line on $(tty)\"; exit 4"], "typed\n");

        Assert.Equal((0, ""), (login.Code, login.Errors));
        Assert.Equal($"Logged in to {admin.BaseAddress} as {username}.\n", login.Output);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, OperatingSystem.IsLinux() ? File.GetUnixFileMode(Path.Combine(_home, "config.json")) : UnixFileMode.None);
        Assert.Equal(0, created.Code);
        var machine = JsonDocument.Parse(created.Output).RootElement;
        Assert.Equal(("cli-box", "running"), (machine.GetProperty("name").GetString(), machine.GetProperty("state").GetString()));
        var id = machine.GetProperty("id").GetGuid();
        Assert.Contains(JsonDocument.Parse(listed.Output).RootElement.EnumerateArray(), m => m.GetProperty("id").GetGuid() == id);
        Assert.StartsWith("ID ", table.Output, StringComparison.Ordinal);
        Assert.Contains($"{id}  cli-box  sandbox  running", table.Output, StringComparison.Ordinal);
        Assert.Equal((3, "out plat\n", "err\n"), (exec.Code, exec.Output, exec.Errors));
        Assert.Equal((0, "SHOUT\n"), (input.Code, input.Output));
        Assert.Equal(4, terminal.Code);
        // A terminal echoes what is typed and ends its lines with \r\n.
        Assert.Contains("typed\r\n", terminal.Output, StringComparison.Ordinal);
        Assert.Contains("got typed on /dev/pts/", terminal.Output, StringComparison.Ordinal);

        var local = Path.Combine(_home, "blob.bin");
        var content = new byte[3 * 1024 * 1024 + 17];
        Random.Shared.NextBytes(content);
        await File.WriteAllBytesAsync(local, content);
        var tree = Directory.CreateDirectory(Path.Combine(_home, "tree", "inner")).Parent!.FullName;
        await File.WriteAllTextAsync(Path.Combine(tree, "inner", "note.txt"), "kept\n");
        var put = await PlatAsync(["cp", local, "cli-box:/scratch/blob.bin"]);
        var putTree = await PlatAsync(["cp", tree, "cli-box:/scratch/tree"]);
        var get = await PlatAsync(["cp", "cli-box:/scratch/blob.bin", Path.Combine(_home, "back.bin")]);
        var getTree = await PlatAsync(["cp", "cli-box:/scratch/tree", Path.Combine(_home, "tree-back")]);
        var logs = await PlatAsync(["logs", "cli-box"]);

        Assert.Equal([0, 0, 0, 0, 0], new[] { put.Code, putTree.Code, get.Code, getTree.Code, logs.Code });
        Assert.Equal(content, await File.ReadAllBytesAsync(Path.Combine(_home, "back.bin")));
        Assert.Equal("kept\n", await File.ReadAllTextAsync(Path.Combine(_home, "tree-back", "inner", "note.txt")));
        Assert.Equal("from-main\n", logs.Output);

        // Its history, in the audit log once telemetry has taken it in: the last events and the recorded command.
        var audited = "";
        await Eventually.TrueAsync(async () =>
        {
            var ran = await PlatAsync(["audit", "--type", "MachineCommandRan", "--stream", $"machine-{id}", "-o", "json"]);
            audited = ran.Output;
            return ran.Code == 0 && JsonDocument.Parse(ran.Output).RootElement.GetArrayLength() == 3;
        }, TimeSpan.FromSeconds(60), "the three commands are in the audit log");
        var events = await PlatAsync(["events", "--machine", "cli-box"]);

        Assert.All(JsonDocument.Parse(audited).RootElement.EnumerateArray(), e => Assert.Equal("MachineCommandRan", e.GetProperty("type").GetString()));
        Assert.Equal(0, events.Code);
        Assert.Contains($"  MachineRequested  machine-{id}  ", events.Output, StringComparison.Ordinal);

        var detached = await PlatAsync(["exec", "-d", "cli-box", "--", "/bin/sh", "-c", "trap 'echo stopped; exit 9' TERM; echo started; while true; do sleep 0.1; done"]);
        var process = Guid.Parse(detached.Output.Trim());
        await Eventually.TrueAsync(async () => (await PlatAsync(["processes", "ls", "cli-box", "-o", "json"])).Output is var listing
            && JsonDocument.Parse(listing).RootElement.EnumerateArray().Any(p => p.GetProperty("processId").GetGuid() == process && p.GetProperty("outputBytes").GetInt64() > 0),
            TimeSpan.FromSeconds(30), "the background process has started");
        var signalled = await PlatAsync(["processes", "signal", "cli-box", process.ToString()]);
        var attached = await PlatAsync(["ps", "attach", "cli-box", process.ToString()]);

        Assert.Equal(0, signalled.Code);
        Assert.Equal(9, attached.Code);
        // Its whole output from the beginning, both streams (the signal reached its group: sh reports its sleep's end too).
        Assert.StartsWith("started\n", attached.Output, StringComparison.Ordinal);
        Assert.Contains("stopped\n", attached.Output, StringComparison.Ordinal);

        var opened = await PlatAsync(["ports", "open", "cli-box", "8080", "--wait", "-o", "json"]);
        var forward = JsonDocument.Parse(opened.Output).RootElement;
        var forwards = await PlatAsync(["ports", "ls", "cli-box"]);
        var closed = await PlatAsync(["ports", "close", "cli-box", forward.GetProperty("id").GetString()!]);
        var node = await PlatAsync(["exit-nodes", "create", "--name", "cli-exit", "--endpoint", "203.0.113.7:51820",
            "--public-key", Convert.ToBase64String(new byte[32].Select((_, i) => (byte)(i + 1)).ToArray()), "--allowed-ip", "0.0.0.0/0", "--region", "eu-central", "-o", "json"]);
        var nodes = await PlatAsync(["exit-nodes", "ls"]);
        var nodeRemoved = await PlatAsync(["exit-nodes", "rm", JsonDocument.Parse(node.Output).RootElement.GetProperty("id").GetString()!]);

        Assert.Equal((0, "open"), (opened.Code, forward.GetProperty("state").GetString()));
        Assert.InRange(forward.GetProperty("hostPort").GetInt32(), 1, 65535);
        Assert.Contains($"{forward.GetProperty("id").GetString()}  8080  open", forwards.Output, StringComparison.Ordinal);
        Assert.Equal(0, closed.Code);
        Assert.Equal(0, node.Code);
        Assert.Contains("cli-exit  203.0.113.7:51820  eu-central", nodes.Output, StringComparison.Ordinal);
        Assert.Equal(0, nodeRemoved.Code);

        var paused = await PlatAsync(["machines", "pause", "cli-box", "--wait", "-o", "json"]);
        var resumed = await PlatAsync(["machines", "resume", "cli-box", "--wait", "-o", "json"]);
        var kept = await PlatAsync(["machines", "keepalive", "cli-box", "-o", "json"]);

        Assert.Equal((0, "paused"), (paused.Code, JsonDocument.Parse(paused.Output).RootElement.GetProperty("state").GetString()));
        Assert.Equal((0, "running"), (resumed.Code, JsonDocument.Parse(resumed.Output).RootElement.GetProperty("state").GetString()));
        Assert.Equal((3600, "stop"), (machine.GetProperty("lifecycle").GetProperty("ttlSeconds").GetInt32(), machine.GetProperty("lifecycle").GetProperty("idle").GetProperty("action").GetString()));
        Assert.Equal(0, kept.Code);
        Assert.True(JsonDocument.Parse(kept.Output).RootElement.GetProperty("lifecycle").GetProperty("expiresAt").GetDateTimeOffset() > DateTimeOffset.UtcNow.AddMinutes(59));

        var snapshot = await PlatAsync(["snapshots", "take", "cli-box", "--name", "cli-snap", "--wait", "-o", "json"]);
        var snapshotId = JsonDocument.Parse(snapshot.Output).RootElement.GetProperty("id").GetString()!;
        var fork = await PlatAsync(["machines", "fork", "cli-box", "--count", "2", "--wait", "-o", "json"]);
        var forkView = JsonDocument.Parse(fork.Output).RootElement;
        var forkSnapshot = forkView.GetProperty("snapshotId").GetString()!;
        var snapshots = await PlatAsync(["snapshots", "list", "--machine", "cli-box"]);
        var inUse = await PlatAsync(["snapshots", "rm", forkSnapshot]);
        var copy = await PlatAsync(["machines", "create", "--from-snapshot", snapshotId, "--name", "cli-copy", "--wait", "-o", "json"]);

        Assert.Equal((0, "ready", "filesystem"), (snapshot.Code, JsonDocument.Parse(snapshot.Output).RootElement.GetProperty("state").GetString(),
            JsonDocument.Parse(snapshot.Output).RootElement.GetProperty("contents").GetString()));
        Assert.Equal((0, "succeeded", 2), (fork.Code, forkView.GetProperty("status").GetString(), forkView.GetProperty("forks").GetArrayLength()));
        Assert.Contains("cli-snap", snapshots.Output, StringComparison.Ordinal);
        Assert.Contains(forkSnapshot, snapshots.Output, StringComparison.Ordinal);
        Assert.Equal(Plat.ExitCodes.Conflict, inUse.Code);
        Assert.Contains("Destroy ", inUse.Errors, StringComparison.Ordinal);
        Assert.Equal((0, "running", snapshotId), (copy.Code, JsonDocument.Parse(copy.Output).RootElement.GetProperty("state").GetString(),
            JsonDocument.Parse(copy.Output).RootElement.GetProperty("fromSnapshot").GetString()));
        foreach (var made in forkView.GetProperty("forks").EnumerateArray().Select(f => f.GetProperty("machineId").GetString()!).Append("cli-copy"))
        {
            Assert.Equal(0, (await PlatAsync(["machines", "rm", made, "--wait"])).Code);
        }

        Assert.Equal(0, (await PlatAsync(["snapshots", "rm", forkSnapshot])).Code);
        Assert.Equal(0, (await PlatAsync(["snapshots", "rm", snapshotId])).Code);

        var missing = await PlatAsync(["machines", "get", Guid.NewGuid().ToString()]);
        var removed = await PlatAsync(["machines", "rm", "cli-box", "--wait"]);
        var gone = await PlatAsync(["machines", "get", id.ToString(), "-o", "json"]);

        Assert.Equal(Plat.ExitCodes.NotFound, missing.Code);
        Assert.StartsWith("plat: ", missing.Errors, StringComparison.Ordinal);
        Assert.Contains("trace: ", missing.Errors, StringComparison.Ordinal);
        Assert.Equal((0, $"{id} destroyed\n"), (removed.Code, removed.Output));
        Assert.Equal("destroyed", JsonDocument.Parse(gone.Output).RootElement.GetProperty("state").GetString());
    }

    [Fact]
    public async Task Plat_logs_in_with_an_api_key_and_what_the_key_may_not_do_exits_3_with_the_problem()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenantAdmin) = await admin.CreateTenantWithAdminAsync();
        var (_, key) = await tenantAdmin.CreateApiKeyAsync(new { name = "cli-viewer", role = Roles.Viewer });

        var wrongKey = await PlatAsync(["login", "--url", admin.BaseAddress!.ToString(), "--api-key-stdin"], "not-a-key\n");
        var login = await PlatAsync(["login", "--url", admin.BaseAddress!.ToString(), "--api-key-stdin"], key + "\n");
        var listed = await PlatAsync(["machines", "list", "-o", "json"]);
        var refused = await PlatAsync(["machines", "create", "--kind", "sandbox", "--memory", "64"]);
        var usage = await PlatAsync(["machines", "create", "--memory", "64"]);
        var logout = await PlatAsync(["logout"]);
        var afterLogout = await PlatAsync(["machines", "list"]);

        Assert.Equal(Plat.ExitCodes.Unauthorized, wrongKey.Code);
        Assert.Equal((0, $"Logged in to {admin.BaseAddress} with an API key.\n"), (login.Code, login.Output));
        Assert.Equal((0, "[]\n"), (listed.Code, listed.Output));
        Assert.Equal(Plat.ExitCodes.Unauthorized, refused.Code);
        Assert.StartsWith("plat: ", refused.Errors, StringComparison.Ordinal);
        Assert.Equal(Plat.ExitCodes.Usage, usage.Code);
        Assert.Contains("--kind", usage.Errors, StringComparison.Ordinal);
        Assert.Equal(0, logout.Code);
        Assert.Equal((Plat.ExitCodes.Unauthorized, "plat: not logged in: run plat login first.\n"), (afterLogout.Code, afterLogout.Errors));
        Assert.DoesNotContain(key, await File.ReadAllTextAsync(Path.Combine(_home, "config.json")), StringComparison.Ordinal);
    }

    private async Task<(int Code, string Output, string Errors)> PlatAsync(string[] args, string input = "")
    {
        using var output = new StringWriter();
        using var errors = new StringWriter();
        var code = await new Plat(output, errors, new StringReader(input), new Dictionary<string, string?> { ["PLAT_CONFIG_DIR"] = _home })
            .RunAsync(args, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(3));
        return (code, output.ToString(), errors.ToString());
    }
}
