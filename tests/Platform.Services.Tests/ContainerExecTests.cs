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

        await GuestScenarios.CommandsInputSignalAndResumeAsync(tenant, id);
    }

    [Fact]
    public async Task A_shell_on_a_container_machines_terminal_is_attached_to_over_a_websocket_through_the_gateway()
    {
        var (tenant, id) = await RunningContainerAsync();

        await GuestScenarios.TerminalOverWebSocketAsync(tenant, id);
    }

    [Fact]
    public async Task A_50_MiB_file_goes_in_and_out_of_a_container_machine_whole_and_another_tenant_sees_nothing()
    {
        var (tenant, id) = await RunningContainerAsync();
        await GuestScenarios.FileAndArchiveRoundTripAsync(tenant, id, "data");

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
        // podman dates lines to the second: a line of the same second as `since` may be in; one of the second before is not.
        await Task.Delay(TimeSpan.FromSeconds(1.2));
        var seen = DateTimeOffset.UtcNow;
        await Task.Delay(TimeSpan.FromSeconds(1.2));
        var since = await tenant.GetStringAsync($"/api/v1/machines/{id}/logs?since={seen.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture)}");

        Assert.Contains("starting\n", all, StringComparison.Ordinal);
        // The engine dates every line: what was written before the time is left out.
        Assert.DoesNotContain("starting", since, StringComparison.Ordinal);
        Assert.DoesNotContain("tick 3\n", since, StringComparison.Ordinal);
        Assert.Contains("tick ", since, StringComparison.Ordinal);
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
