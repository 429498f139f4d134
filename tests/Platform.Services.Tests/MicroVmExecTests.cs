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

        await GuestScenarios.CommandsInputSignalAndResumeAsync(tenant, id);
    }

    [Fact]
    public async Task A_shell_on_a_micro_vms_terminal_is_attached_to_over_a_websocket_through_the_gateway()
    {
        var (tenant, id) = await RunningMicroVmAsync();

        await GuestScenarios.TerminalOverWebSocketAsync(tenant, id);
    }

    [Fact]
    public async Task A_micro_vms_serial_console_is_a_shell_over_a_websocket_and_a_sandbox_has_none()
    {
        var (tenant, id) = await RunningMicroVmAsync();
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var console = await GuestScenarios.ConnectAsync(tenant, $"/api/v1/machines/{id}/console", patience.Token);
        var screen = new System.Text.StringBuilder();

        await console.SendAsync("echo console says $((6 * 7))\n"u8.ToArray(), System.Net.WebSockets.WebSocketMessageType.Binary, true, patience.Token);
        await GuestScenarios.ReadUntilAsync(console, screen, s => s.Contains("console says 42", StringComparison.Ordinal), patience.Token);
        var second = await Assert.ThrowsAsync<System.Net.WebSockets.WebSocketException>(() => GuestScenarios.ConnectAsync(tenant, $"/api/v1/machines/{id}/console", patience.Token));
        Assert.Contains("409", second.Message, StringComparison.Ordinal);
        await console.CloseAsync(System.Net.WebSockets.WebSocketCloseStatus.NormalClosure, "done", patience.Token);

        var sandbox = await tenant.CreateMachineAsync(new { kind = "sandbox", vcpus = 1, memoryMiB = 64 });
        await tenant.WaitForMachineAsync(sandbox, "running");
        await Problems.AssertAsync(await tenant.GetAsync($"/api/v1/machines/{sandbox}/console"), HttpStatusCode.Conflict, "urn:platform:problem:exec-unsupported");
    }

    [Fact]
    public async Task A_50_MiB_file_goes_in_and_out_of_a_micro_vm_whole_its_directory_comes_out_as_a_tar_and_another_tenant_sees_nothing()
    {
        var (tenant, id) = await RunningMicroVmAsync(memoryMiB: 256);
        await GuestScenarios.FileAndArchiveRoundTripAsync(tenant, id, "scratch/data");

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
