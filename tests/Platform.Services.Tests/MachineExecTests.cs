using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>Exec, processes and files of sandbox machines through the gateway: provisioning grants, the host agent runs them inside the machine.</summary>
[Collection(StackCollection.Name)]
public sealed class MachineExecTests(PlatformStack stack, Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task A_command_runs_in_a_sandbox_with_its_input_and_answers_its_output_and_exit_code_and_every_run_is_an_event_of_the_machine()
    {
        var (tenant, id) = await RunningSandboxAsync();

        var hello = await tenant.ExecAsync(id, new { command = new[] { "echo", "hello" } });
        var input = await tenant.ExecAsync(id, new { command = new[] { "/bin/sh", "-c", "tr a-z A-Z; echo done >&2; exit 3" }, stdin = "shout\n", env = new { SECRET_VALUE = "not-in-events" } });

        Assert.Equal((0, "hello\n", ""), (hello.GetProperty("exitCode").GetInt32(), hello.GetProperty("stdout").GetString(), hello.GetProperty("stderr").GetString()));
        Assert.False(hello.GetProperty("truncated").GetBoolean());
        Assert.True(hello.GetProperty("durationMs").GetDouble() > 0);
        Assert.Equal((3, "SHOUT\n", "done\n"), (input.GetProperty("exitCode").GetInt32(), input.GetProperty("stdout").GetString(), input.GetProperty("stderr").GetString()));
        var ran = await EventsOfTypeAsync(tenant, id, "MachineCommandRan", 2);
        Assert.Equal(["echo", "hello"], ran[0].GetProperty("data").GetProperty("argv").EnumerateArray().Select(a => a.GetString()));
        Assert.Equal(3, ran[1].GetProperty("data").GetProperty("exitCode").GetInt32());
        Assert.StartsWith("user:", ran[1].GetProperty("actor").GetString(), StringComparison.Ordinal);
        var recorded = await tenant.GetStringAsync($"/api/v1/machines/{id}/events");
        Assert.DoesNotContain("not-in-events", recorded, StringComparison.Ordinal);
        Assert.DoesNotContain("SHOUT", recorded, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_documented_examples_have_the_shapes_the_api_answers()
    {
        var document = Path.Combine("api", "exec.md");
        var (tenant, id) = await RunningSandboxAsync();
        var result = await tenant.ExecAsync(id, new { command = new[] { "echo", "hello" } });
        var processId = await tenant.StartInBackgroundAsync(id, "sleep", "5");
        var processes = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/processes");
        var written = await tenant.PutAsync($"/api/v1/machines/{id}/files/scratch/data/blob.bin?mode=0600", new ByteArrayContent(new byte[100]));
        var listing = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/files/scratch/data");
        var ran = await EventsOfTypeAsync(tenant, id, "MachineCommandRan", 1);

        DocumentationTests.AssertSameShape(DocumentationTests.Example(document, "exec-result"), result);
        DocumentationTests.AssertSameShape(DocumentationTests.Example(document, "processes"), processes);
        DocumentationTests.AssertSameShape(DocumentationTests.Example(document, "file-written"), await written.Content.ReadFromJsonAsync<JsonElement>());
        DocumentationTests.AssertSameShape(DocumentationTests.Example(document, "listing"), listing);
        DocumentationTests.AssertSameShape(DocumentationTests.Example(document, "command-ran"), ran[0].GetProperty("data"));
        Assert.Contains(processes.GetProperty("items").EnumerateArray(), p => p.GetProperty("processId").GetGuid() == processId);
    }

    [Fact]
    public async Task With_event_stream_accepted_output_streams_as_it_is_written_and_ends_with_the_exit()
    {
        var (tenant, id) = await RunningSandboxAsync();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/machines/{id}/exec")
        {
            Content = JsonContent.Create(new { command = new[] { "/bin/sh", "-c", "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three; exit 5" } }),
        };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));

        using var response = await tenant.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var events = await MachineGuestApi.ReadEventsAsync(response);

        Assert.Equal(["stdout:one\n", "stderr:two\n", "stdout:three\n"], events.Where(e => e.Name != "exit").Select(e => $"{e.Name}:{e.Text}"));
        var exit = events[^1];
        Assert.Equal("exit", exit.Name);
        Assert.Equal(5, JsonDocument.Parse(exit.Data).RootElement.GetProperty("exitCode").GetInt32());
        Assert.Equal("one\ntwo\nthree\n".Length, exit.Id);
    }

    [Fact]
    public async Task A_30_s_background_job_outlives_its_request_and_a_reader_that_drops_its_connection_resumes_without_losing_output()
    {
        var (tenant, id) = await RunningSandboxAsync();
        var processId = await tenant.StartInBackgroundAsync(id, "/bin/sh", "-c", "i=1; while [ $i -le 30 ]; do echo line $i; i=$((i + 1)); sleep 1; done");

        // The first reader leaves after a few lines; while nobody reads the job goes on; the next reader resumes from
        // the last offset the first saw.
        var first = await tenant.FollowOutputAsync(id, processId, stopAfter: e => e.Text.Contains("line 3", StringComparison.Ordinal));
        await Task.Delay(TimeSpan.FromSeconds(5));
        var listed = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/processes");
        var rest = await tenant.FollowOutputAsync(id, processId, offset: first[^1].Id);

        var text = string.Concat(first.Concat(rest).Where(e => e.Name == "stdout").Select(e => e.Text));
        Assert.Equal(string.Concat(Enumerable.Range(1, 30).Select(i => $"line {i}\n")), text);
        Assert.Equal("exit", rest[^1].Name);
        Assert.Contains(listed.GetProperty("items").EnumerateArray(), p => p.GetProperty("processId").GetGuid() == processId && p.GetProperty("background").GetBoolean() && p.GetProperty("state").GetString() == "running");
        var ended = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/processes/{processId}");
        Assert.Equal(("exited", 0), (ended.GetProperty("state").GetString(), ended.GetProperty("exitCode").GetInt32()));
    }

    [Fact]
    public async Task A_shell_on_a_sandboxs_terminal_is_attached_to_over_a_websocket_through_the_gateway()
    {
        var (tenant, id) = await RunningSandboxAsync();

        await GuestScenarios.TerminalOverWebSocketAsync(tenant, id);
    }

    [Fact]
    public async Task A_signal_and_input_reach_a_background_process()
    {
        var (tenant, id) = await RunningSandboxAsync();
        var processId = await tenant.StartInBackgroundAsync(id, "/bin/sh", "-c", "trap 'echo got TERM; exit 3' TERM; read line; echo \"read $line\"; while true; do sleep 0.1; done");

        output.WriteLine($"started {processId}");
        var stdin = await tenant.PostAsync($"/api/v1/machines/{id}/processes/{processId}/stdin", new StringContent("hello\n"));
        output.WriteLine($"stdin {stdin.StatusCode}");
        Assert.Equal(HttpStatusCode.NoContent, stdin.StatusCode);
        var reading = await tenant.FollowOutputAsync(id, processId, stopAfter: e => e.Text.Contains("read hello", StringComparison.Ordinal));
        output.WriteLine(string.Join(" | ", reading.Select(e => $"{e.Name}:{e.Data}")));
        Assert.Contains(reading, e => e.Text.Contains("read hello", StringComparison.Ordinal));
        var signal = await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/processes/{processId}/signal", new { signal = "TERM" });
        output.WriteLine($"signal {signal.StatusCode}");
        Assert.Equal(HttpStatusCode.Accepted, signal.StatusCode);
        var events = await tenant.FollowOutputAsync(id, processId);

        Assert.Equal("read hello\ngot TERM\n", string.Concat(events.Where(e => e.Name == "stdout").Select(e => e.Text)));
        Assert.Equal(3, JsonDocument.Parse(events[^1].Data).RootElement.GetProperty("exitCode").GetInt32());
    }

    [Fact]
    public async Task A_50_MiB_file_goes_in_and_out_whole_a_directory_lists_and_comes_out_as_a_tar_and_deletes_are_events()
    {
        var (tenant, id) = await RunningSandboxAsync(memoryMiB: 256);
        var content = new byte[50 * 1024 * 1024];
        Random.Shared.NextBytes(content);
        var sha256 = Convert.ToHexStringLower(SHA256.HashData(content));

        var put = await tenant.PutAsync($"/api/v1/machines/{id}/files/scratch/data/blob.bin?mode=0600", new ByteArrayContent(content));
        Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        Assert.Equal(sha256, (await put.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("sha256").GetString());
        var back = await tenant.GetByteArrayAsync($"/api/v1/machines/{id}/files/scratch/data/blob.bin");
        Assert.Equal(sha256, Convert.ToHexStringLower(SHA256.HashData(back)));

        await tenant.PutAsync($"/api/v1/machines/{id}/files/scratch/data/note.txt", new StringContent("a note"));
        var listing = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/files/scratch/data");
        var entries = listing.GetProperty("items").EnumerateArray().ToDictionary(e => e.GetProperty("name").GetString()!);
        Assert.Equal(["blob.bin", "note.txt"], entries.Keys);
        Assert.Equal(("file", 50L * 1024 * 1024, "0600"), (entries["blob.bin"].GetProperty("type").GetString(), entries["blob.bin"].GetProperty("size").GetInt64(), entries["blob.bin"].GetProperty("mode").GetString()));

        await using (var tar = await tenant.GetStreamAsync($"/api/v1/machines/{id}/archive/scratch/data"))
        {
            var names = new List<string>();
            using var reader = new System.Formats.Tar.TarReader(tar);
            while (await reader.GetNextEntryAsync() is { } entry)
            {
                names.Add(entry.Name);
            }

            Assert.Contains("./note.txt", names);
            Assert.Contains("./blob.bin", names);
        }

        var notEmpty = await tenant.DeleteAsync($"/api/v1/machines/{id}/files/scratch/data");
        await Problems.AssertAsync(notEmpty, HttpStatusCode.Conflict, "urn:platform:problem:conflict");
        Assert.Equal(HttpStatusCode.NoContent, (await tenant.DeleteAsync($"/api/v1/machines/{id}/files/scratch/data?recursive=true")).StatusCode);
        await Problems.AssertAsync(await tenant.GetAsync($"/api/v1/machines/{id}/files/scratch/data"), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
        var written = await EventsOfTypeAsync(tenant, id, "MachineFileWritten", 2);
        Assert.Equal(("/scratch/data/blob.bin", sha256), (written[0].GetProperty("data").GetProperty("path").GetString(), written[0].GetProperty("data").GetProperty("sha256").GetString()));
        var deleted = await EventsOfTypeAsync(tenant, id, "MachineFileDeleted", 1);
        Assert.True(deleted[0].GetProperty("data").GetProperty("recursive").GetBoolean());
    }

    [Fact]
    public async Task A_machines_logs_are_its_main_process_output_and_follow_it_as_it_writes()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        tenant.Timeout = TimeSpan.FromSeconds(60);
        var id = await tenant.CreateMachineAsync(new { kind = "sandbox", vcpus = 1, memoryMiB = 64,
            command = new[] { "/bin/sh", "-c", "echo starting >&2; i=1; while true; do echo tick $i; i=$((i + 1)); sleep 0.2; done" } });
        await tenant.WaitForMachineAsync(id, "running");
        await Eventually.TrueAsync(async () => (await tenant.GetStringAsync($"/api/v1/machines/{id}/logs")).Contains("tick 3", StringComparison.Ordinal), TimeSpan.FromSeconds(30), "the machine has written three ticks");

        var lastTwo = await tenant.GetStringAsync($"/api/v1/machines/{id}/logs?tail=2");
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/api/v1/machines/{id}/logs?follow=true&tail=1");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        using var response = await tenant.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var followed = await MachineGuestApi.ReadEventsAsync(response, e => e.Name == "stdout" && e.Text.Contains("tick", StringComparison.Ordinal) && Tick(e.Text) >= Tick(lastTwo) + 5);

        var lines = lastTwo.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        // tail counts lines per stream: the last two of its output, and its errors' one line.
        Assert.Equal(2, lines.Count(l => l.StartsWith("tick", StringComparison.Ordinal)));
        Assert.Contains("starting", lines);
        Assert.Contains(followed, e => e.Name == "stderr" && e.Text == "starting\n");
        var ticks = followed.Where(e => e.Name == "stdout").SelectMany(e => e.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries)).Select(l => int.Parse(l["tick ".Length..], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(Enumerable.Range(ticks[0], ticks.Count), ticks);

        static int Tick(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("tick ", StringComparison.Ordinal)).Select(l => int.Parse(l[5..], System.Globalization.CultureInfo.InvariantCulture)).DefaultIfEmpty(0).Max();
    }

    [Fact]
    public async Task Logs_since_a_time_leave_out_what_was_written_before_it_while_the_machine_runs_and_after_it_is_destroyed()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        tenant.Timeout = TimeSpan.FromSeconds(60);
        var id = await tenant.CreateMachineAsync(new { kind = "sandbox", vcpus = 1, memoryMiB = 64, command = new[] { "/bin/sh", "-c", "echo early; sleep 5; echo late; sleep 600" } });
        await tenant.WaitForMachineAsync(id, "running");
        await Eventually.TrueAsync(async () => (await tenant.GetStringAsync($"/api/v1/machines/{id}/logs")).Contains("early", StringComparison.Ordinal), TimeSpan.FromSeconds(30), "the machine wrote its first line");
        // Its host notes the logs' sizes every second: by this time it has noted the first line.
        var between = (DateTimeOffset.UtcNow + TimeSpan.FromSeconds(1.5)).UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture);
        await Eventually.TrueAsync(async () => (await tenant.GetStringAsync($"/api/v1/machines/{id}/logs")).Contains("late", StringComparison.Ordinal), TimeSpan.FromSeconds(30), "the machine wrote its second line");

        var whileRunning = await tenant.GetStringAsync($"/api/v1/machines/{id}/logs?since={between}");
        var lastHour = await tenant.GetStringAsync($"/api/v1/machines/{id}/logs?since=1h");
        await Problems.AssertAsync(await tenant.GetAsync($"/api/v1/machines/{id}/logs?since=yesterday"), HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
        var afterDestroy = await tenant.GetStringAsync($"/api/v1/machines/{id}/logs?since={between}");

        Assert.Equal("late\n", whileRunning);
        Assert.Equal("early\nlate\n", lastHour);
        Assert.Equal("late\n", afterDestroy);
    }

    [Fact]
    public async Task A_machines_logs_outlive_it_on_its_host_after_it_exits_and_after_it_is_destroyed()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var (_, other) = await admin.CreateTenantWithAdminAsync();
        tenant.Timeout = TimeSpan.FromSeconds(60);
        var id = await tenant.CreateMachineAsync(new { kind = "sandbox", vcpus = 1, memoryMiB = 64, command = new[] { "/bin/sh", "-c", "echo last words; echo complaint >&2; sleep 1" } });
        await tenant.WaitForMachineAsync(id, "stopped");

        var afterExit = await tenant.GetStringAsync($"/api/v1/machines/{id}/logs");
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
        var afterDestroy = await tenant.GetStringAsync($"/api/v1/machines/{id}/logs?tail=1");

        Assert.Equal("last words\ncomplaint\n", afterExit);
        Assert.Equal("last words\ncomplaint\n", afterDestroy);
        await Problems.AssertAsync(await other.GetAsync($"/api/v1/machines/{id}/logs"), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
    }

    [Fact]
    public async Task The_record_of_a_command_an_agent_had_not_published_when_it_crashed_is_published_when_it_starts_again()
    {
        var (tenantId, tenant, id) = await RunningSandboxOfTenantAsync(memoryMiB: 64);
        var hostId = (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}")).GetProperty("hostId").GetGuid();
        var processId = Guid.CreateVersion7();

        // Written, not yet published, when the agent died: what its outbox holds then.
        await stack.CrashAndRestartHostAgentAsync(() =>
        {
            var outbox = Directory.CreateDirectory(Path.Combine(stack.AgentStatePath, "outbox")).FullName;
            var file = Path.Combine(outbox, $"{Guid.CreateVersion7():N}.GuestCommandEnded.json");
            File.WriteAllText(file, JsonSerializer.Serialize(new
            {
                machineId = id, tenantId, hostId, processId, argv = new[] { "echo", "left", "behind" }, exitCode = 0, durationMs = 1.5, timedOut = false,
                actor = "user:019af0a1-0000-7000-8000-000000000001", endedAt = DateTimeOffset.UtcNow,
            }));
            File.SetLastWriteTimeUtc(file, DateTime.UtcNow.AddMinutes(-1));
        });

        var ran = await EventsOfTypeAsync(tenant, id, "MachineCommandRan", 1);
        Assert.Equal((processId, "left"), (ran[0].GetProperty("data").GetProperty("processId").GetGuid(), ran[0].GetProperty("data").GetProperty("argv")[1].GetString()));
        await Eventually.TrueAsync(() => !Directory.EnumerateFiles(Path.Combine(stack.AgentStatePath, "outbox")).Any(), TimeSpan.FromSeconds(10), "the outbox is empty");
    }

    [Fact]
    public async Task Paths_resolve_inside_the_machine_whatever_their_dots_and_links()
    {
        var (tenant, id) = await RunningSandboxAsync();
        await tenant.ExecAsync(id, new { command = new[] { "/bin/sh", "-c", "ln -s /etc /scratch/host-etc; ln -s ../../../../etc/shadow /scratch/shadow" } });

        // The sandbox has no /etc/shadow of its own: the links lead nowhere, whatever the host holds.
        await Problems.AssertAsync(await tenant.GetAsync($"/api/v1/machines/{id}/files/scratch/shadow"), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
        await Problems.AssertAsync(await tenant.GetAsync($"/api/v1/machines/{id}/files/scratch/../../../etc/shadow"), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
        var etc = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/files/scratch/host-etc");
        Assert.DoesNotContain(etc.GetProperty("items").EnumerateArray(), e => e.GetProperty("name").GetString() is "shadow" or "passwd");
    }

    [Fact]
    public async Task Bad_input_is_a_problem_that_names_it_and_changes_nothing()
    {
        var (tenant, id) = await RunningSandboxAsync();

        await Problems.AssertAsync(await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/exec", new { command = Array.Empty<string>() }), HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        await Problems.AssertAsync(await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/exec", new { command = new[] { "true" }, timeoutSeconds = -1 }), HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        await Problems.AssertAsync(await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/exec", new { command = new[] { "true" }, env = new Dictionary<string, string> { ["BAD=NAME"] = "x" } }), HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        await Problems.AssertAsync(await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/exec", new { command = new[] { "true" }, env = new { BIG = new string('x', 300 * 1024) } }), HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        await Problems.AssertAsync(await tenant.PostAsync($"/api/v1/machines/{id}/exec", new StringContent("{not json", System.Text.Encoding.UTF8, "application/json")), HttpStatusCode.BadRequest, "urn:platform:problem:malformed-request");
        await Problems.AssertAsync(await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/exec", new { command = new[] { "true" }, user = "no such user!" }), HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        await Problems.AssertAsync(await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/exec", new { command = new[] { "true" }, tty = true, columns = 0, rows = 24 }), HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        await Problems.AssertAsync(await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/exec", new { command = new[] { "true" }, columns = 80 }), HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        var onPipes = await tenant.StartInBackgroundAsync(id, "sleep", "30");
        await Problems.AssertAsync(await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/processes/{onPipes}/resize", new { columns = 100, rows = 30 }), HttpStatusCode.Conflict, "urn:platform:problem:conflict");
        await Problems.AssertAsync(await tenant.GetAsync($"/api/v1/machines/{id}/processes/{onPipes}/attach"), HttpStatusCode.BadRequest, "urn:platform:problem:malformed-request");
        await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/processes/{onPipes}/signal", new { signal = "KILL" });
        await Problems.AssertAsync(await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/processes/{Guid.NewGuid()}/signal", new { signal = "TERM" }), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
        await Problems.AssertAsync(await tenant.PutAsync($"/api/v1/machines/{id}/files/scratch/x?mode=999", new StringContent("x")), HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        var missing = await tenant.ExecAsync(id, new { command = new[] { "/no/such/program" } });
        Assert.Equal(127, missing.GetProperty("exitCode").GetInt32());
        var history = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/events");
        Assert.DoesNotContain(history.EnumerateArray(), e => e.GetProperty("type").GetString() == "MachineFileWritten");
    }

    [Fact]
    public async Task Another_tenant_gets_404_on_every_route_a_viewer_only_reads_and_a_stopped_machine_is_a_409()
    {
        var (tenantId, tenant, id) = await RunningSandboxOfTenantAsync();
        using var admin = await stack.AdminAsync();
        var (_, other) = await admin.CreateTenantWithAdminAsync();
        var processId = await tenant.StartInBackgroundAsync(id, "sleep", "30");
        var routes = new (HttpMethod Method, string Path, HttpContent? Body)[]
        {
            (HttpMethod.Post, "exec", JsonContent.Create(new { command = new[] { "true" } })),
            (HttpMethod.Get, "processes", null),
            (HttpMethod.Get, $"processes/{processId}", null),
            (HttpMethod.Get, $"processes/{processId}/output", null),
            (HttpMethod.Post, $"processes/{processId}/stdin", new StringContent("x")),
            (HttpMethod.Post, $"processes/{processId}/signal", JsonContent.Create(new { signal = "KILL" })),
            (HttpMethod.Get, "files/scratch", null),
            (HttpMethod.Put, "files/scratch/x", new StringContent("x")),
            (HttpMethod.Delete, "files/scratch/x", null),
            (HttpMethod.Get, "archive/scratch", null),
            (HttpMethod.Put, "archive/scratch", new ByteArrayContent(new byte[1024])),
        };

        foreach (var (method, path, body) in routes)
        {
            var response = await other.SendAsync(new HttpRequestMessage(method, $"/api/v1/machines/{id}/{path}") { Content = body });
            await Problems.AssertAsync(response, HttpStatusCode.NotFound, "urn:platform:problem:not-found");
        }

        var viewer = await ViewerOfAsync(tenant, tenantId);
        await Problems.AssertAsync(await viewer.PostAsJsonAsync($"/api/v1/machines/{id}/exec", new { command = new[] { "true" } }), HttpStatusCode.Forbidden, "urn:platform:problem:forbidden");
        await Problems.AssertAsync(await viewer.PutAsync($"/api/v1/machines/{id}/files/scratch/x", new StringContent("x")), HttpStatusCode.Forbidden, "urn:platform:problem:forbidden");
        Assert.Equal(HttpStatusCode.OK, (await viewer.GetAsync($"/api/v1/machines/{id}/processes")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await viewer.GetAsync($"/api/v1/machines/{id}/files/scratch")).StatusCode);

        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/stop");
        await tenant.WaitForMachineAsync(id, "stopped");
        await Problems.AssertAsync(await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/exec", new { command = new[] { "true" } }), HttpStatusCode.Conflict, "urn:platform:problem:machine-not-running");
    }

    private async Task<HttpClient> ViewerOfAsync(HttpClient tenantAdmin, Guid tenantId)
    {
        var username = $"viewer-{Guid.NewGuid():N}"[..20];
        var created = await tenantAdmin.PostAsJsonAsync($"/api/v1/tenants/{tenantId}/users", new { username, password = PlatformApi.TenantAdminPassword, role = "viewer" });
        Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
        return await stack.LoginAsync(username, PlatformApi.TenantAdminPassword);
    }

    private async Task<(HttpClient Tenant, Guid MachineId)> RunningSandboxAsync(int memoryMiB = 128) =>
        await RunningSandboxOfTenantAsync(memoryMiB) is var (_, tenant, id) ? (tenant, id) : default;

    private async Task<(Guid TenantId, HttpClient Tenant, Guid MachineId)> RunningSandboxOfTenantAsync(int memoryMiB = 128)
    {
        using var admin = await stack.AdminAsync();
        var (tenantId, tenant) = await admin.CreateTenantWithAdminAsync();
        tenant.Timeout = TimeSpan.FromSeconds(60);
        var id = await tenant.CreateMachineAsync(new { kind = "sandbox", vcpus = 1, memoryMiB });
        await tenant.WaitForMachineAsync(id, "running");
        return (tenantId, tenant, id);
    }

    /// <summary>The machine's events of that type, once there are at least <paramref name="count"/> (the agent reports them over the bus).</summary>
    private static async Task<IReadOnlyList<JsonElement>> EventsOfTypeAsync(HttpClient tenant, Guid id, string type, int count)
    {
        IReadOnlyList<JsonElement> found = [];
        await Eventually.TrueAsync(async () =>
        {
            var history = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/events");
            found = history.EnumerateArray().Where(e => e.GetProperty("type").GetString() == type).Select(e => e.Clone()).ToList();
            return found.Count >= count;
        }, TimeSpan.FromSeconds(30), $"{count} {type} events are recorded");
        return found;
    }
}
