using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>Exec, processes, files and logs of micro-VMs through the gateway: the host agent reaches the guest agent over the VM's virtio-serial port.</summary>
[Collection(StackCollection.Name)]
public sealed class MicroVmExecTests(PlatformStack stack)
{
    [Fact]
    public async Task A_command_runs_in_a_micro_vm_with_its_input_and_a_background_one_is_signalled_and_resumed_without_losing_output()
    {
        var (tenant, id) = await RunningMicroVmAsync();

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
    public async Task A_50_MiB_file_goes_in_and_out_of_a_micro_vm_whole_its_directory_comes_out_as_a_tar_and_another_tenant_sees_nothing()
    {
        var (tenant, id) = await RunningMicroVmAsync(memoryMiB: 256);
        var content = new byte[50 * 1024 * 1024];
        Random.Shared.NextBytes(content);
        var sha256 = Convert.ToHexStringLower(SHA256.HashData(content));

        var put = await tenant.PutAsync($"/api/v1/machines/{id}/files/scratch/data/blob.bin", new ByteArrayContent(content));
        var back = await tenant.GetByteArrayAsync($"/api/v1/machines/{id}/files/scratch/data/blob.bin");
        var listing = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/files/scratch/data");
        await using var tar = await tenant.GetStreamAsync($"/api/v1/machines/{id}/archive/scratch/data");
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

        using var admin = await stack.AdminAsync();
        var (_, other) = await admin.CreateTenantWithAdminAsync();
        await Problems.AssertAsync(await other.GetAsync($"/api/v1/machines/{id}/files/scratch/data/blob.bin"), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
        await Problems.AssertAsync(await other.PostAsJsonAsync($"/api/v1/machines/{id}/exec", new { command = new[] { "true" } }), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
        await Problems.AssertAsync(await other.GetAsync($"/api/v1/machines/{id}/logs"), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
    }

    [Fact]
    public async Task A_micro_vms_logs_are_its_serial_console_and_follow_what_is_written_to_it()
    {
        var (tenant, id) = await RunningMicroVmAsync();
        var processId = await tenant.StartInBackgroundAsync(id, "/bin/sh", "-c", "i=1; while [ $i -le 100 ]; do echo console tick $i > /dev/console; i=$((i + 1)); sleep 0.1; done");

        using var request = new HttpRequestMessage(HttpMethod.Get, $"/api/v1/machines/{id}/logs?follow=true&tail=5");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        using var response = await tenant.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var followed = await MachineGuestApi.ReadEventsAsync(response, e => e.Text.Contains("console tick 8\n", StringComparison.Ordinal));
        var all = await tenant.GetStringAsync($"/api/v1/machines/{id}/logs");

        Assert.All(followed, e => Assert.Equal("console", e.Name));
        Assert.Contains($"PLATFORM-READY {id:N}", all, StringComparison.Ordinal);
        Assert.Contains("console tick 1\n", all, StringComparison.Ordinal);
        var ticks = string.Concat(followed.Select(e => e.Text)).Split('\n').Where(l => l.StartsWith("console tick ", StringComparison.Ordinal)).Select(l => int.Parse(l["console tick ".Length..], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(Enumerable.Range(ticks[0], ticks.Count), ticks);
        await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/processes/{processId}/signal", new { signal = "KILL" });
    }

    private async Task<(HttpClient Tenant, Guid MachineId)> RunningMicroVmAsync(int memoryMiB = 128)
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        tenant.Timeout = TimeSpan.FromSeconds(120);
        var id = await tenant.CreateMachineAsync(new { kind = "microvm", vcpus = 1, memoryMiB });
        await tenant.WaitForMachineAsync(id, "running");
        return (tenant, id);
    }
}
