using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>Exec, processes and files of container machines through the gateway: the engine's exec API, inside the container.</summary>
[Collection(ContainerStackCollection.Name)]
public sealed class ContainerExecTests(ContainerStack stack)
{
    [Fact]
    public async Task A_command_runs_in_a_container_machine_with_its_input_and_a_background_one_is_signalled_and_resumed()
    {
        var (tenant, id) = await RunningContainerAsync();

        var hello = await tenant.ExecAsync(id, new { command = new[] { "echo", "hello" } });
        var input = await tenant.ExecAsync(id, new { command = new[] { "/bin/sh", "-c", "tr a-z A-Z; exit 4" }, stdin = "shout\n" });
        var processId = await tenant.StartInBackgroundAsync(id, "/bin/sh", "-c", "trap 'echo got TERM; exit 3' TERM; i=1; while true; do echo line $i; i=$((i + 1)); sleep 0.1; done");
        var first = await tenant.FollowOutputAsync(id, processId, stopAfter: e => e.Text.Contains("line 3", StringComparison.Ordinal));
        var signal = await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/processes/{processId}/signal", new { signal = "TERM" });
        var rest = await tenant.FollowOutputAsync(id, processId, offset: first[^1].Id);

        Assert.Equal((0, "hello\n"), (hello.GetProperty("exitCode").GetInt32(), hello.GetProperty("stdout").GetString()));
        Assert.Equal((4, "SHOUT\n"), (input.GetProperty("exitCode").GetInt32(), input.GetProperty("stdout").GetString()));
        Assert.Equal(HttpStatusCode.Accepted, signal.StatusCode);
        var lines = string.Concat(first.Concat(rest).Where(e => e.Name == "stdout").Select(e => e.Text)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("got TERM", lines[^1]);
        Assert.Equal(Enumerable.Range(1, lines.Length - 1).Select(i => $"line {i}"), lines[..^1]);
        Assert.Equal(3, JsonDocument.Parse(rest[^1].Data).RootElement.GetProperty("exitCode").GetInt32());
    }

    [Fact]
    public async Task A_50_MiB_file_goes_in_and_out_of_a_container_machine_whole_and_another_tenant_sees_nothing()
    {
        var (tenant, id) = await RunningContainerAsync();
        var content = new byte[50 * 1024 * 1024];
        Random.Shared.NextBytes(content);
        var sha256 = Convert.ToHexStringLower(SHA256.HashData(content));

        var put = await tenant.PutAsync($"/api/v1/machines/{id}/files/data/blob.bin", new ByteArrayContent(content));
        var back = await tenant.GetByteArrayAsync($"/api/v1/machines/{id}/files/data/blob.bin");
        var listing = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/files/data");
        await using var tar = await tenant.GetStreamAsync($"/api/v1/machines/{id}/archive/data");
        using var reader = new System.Formats.Tar.TarReader(tar);
        var entry = await reader.GetNextEntryAsync();
        while (entry is { EntryType: System.Formats.Tar.TarEntryType.Directory })
        {
            entry = await reader.GetNextEntryAsync();
        }

        Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        Assert.Equal(sha256, (await put.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("sha256").GetString());
        Assert.Equal(sha256, Convert.ToHexStringLower(SHA256.HashData(back)));
        Assert.Equal(["blob.bin"], listing.GetProperty("items").EnumerateArray().Select(e => e.GetProperty("name").GetString()));
        Assert.Equal("./blob.bin", entry!.Name);
        Assert.Equal(content.Length, entry.Length);

        using var admin = await stack.Platform.AdminAsync();
        var (_, other) = await admin.CreateTenantWithAdminAsync();
        await Problems.AssertAsync(await other.GetAsync($"/api/v1/machines/{id}/files/data/blob.bin"), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
        await Problems.AssertAsync(await other.PostAsJsonAsync($"/api/v1/machines/{id}/exec", new { command = new[] { "true" } }), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
    }

    [Fact]
    public async Task A_container_machines_logs_are_its_main_process_output()
    {
        using var admin = await stack.Platform.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        tenant.Timeout = TimeSpan.FromSeconds(60);
        var id = await tenant.CreateMachineAsync(new { kind = "container", template = PodmanService.Image, vcpus = 1, memoryMiB = 64,
            command = new[] { "/bin/sh", "-c", "echo starting >&2; i=1; while true; do echo tick $i; i=$((i + 1)); sleep 0.2; done" } });
        await tenant.WaitForMachineAsync(id, "running");

        await Eventually.TrueAsync(async () => (await tenant.GetStringAsync($"/api/v1/machines/{id}/logs")).Contains("tick 3", StringComparison.Ordinal), TimeSpan.FromSeconds(30), "the machine has written three ticks");
        var all = await tenant.GetStringAsync($"/api/v1/machines/{id}/logs");
        var lastOne = await tenant.GetStringAsync($"/api/v1/machines/{id}/logs?tail=1");

        Assert.Contains("starting\n", all, StringComparison.Ordinal);
        Assert.StartsWith("tick 1\ntick 2\ntick 3\n", string.Concat(all.Split('\n').Where(l => l.StartsWith("tick", StringComparison.Ordinal)).Select(l => l + "\n")), StringComparison.Ordinal);
        Assert.Single(lastOne.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("tick", StringComparison.Ordinal));
    }

    private async Task<(HttpClient Tenant, Guid MachineId)> RunningContainerAsync()
    {
        using var admin = await stack.Platform.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        tenant.Timeout = TimeSpan.FromSeconds(60);
        var id = await tenant.CreateMachineAsync(new { kind = "container", template = PodmanService.Image, vcpus = 1, memoryMiB = 64, command = new[] { "sleep", "1000" } });
        await tenant.WaitForMachineAsync(id, "running");
        return (tenant, id);
    }
}
