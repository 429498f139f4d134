using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.Services.Tests;

/// <summary>Container machines through the gateway, run by a host agent on the tests' own podman service.</summary>
[Collection(ContainerStackCollection.Name)]
public sealed class ContainerMachineTests(ContainerStack stack, ITestOutputHelper output)
{
    [Fact]
    public async Task A_container_machine_runs_stops_starts_again_and_is_destroyed_leaving_no_container()
    {
        var tenant = await TenantAsync();
        var clock = Stopwatch.StartNew();
        var id = await MachineTests.CreateAsync(tenant, new { name = "boxed", kind = "container", template = PodmanService.Image, vcpus = 1, memoryMiB = 64, labels = new { app = "web" } });
        var running = await MachineTests.WaitAsync(tenant, id, "running");
        output.WriteLine($"container machine: POST → running in {clock.Elapsed.TotalMilliseconds:0} ms; the agent: "
            + stack.Platform.HostAgent!.Output.LastOrDefault(l => l.Contains(id.ToString(), StringComparison.Ordinal) && l.Contains("running after", StringComparison.Ordinal)));
        var container = $"pm-{id:N}";

        Assert.Equal(("container", "container"), (running.GetProperty("kind").GetString(), running.GetProperty("driver").GetString()));
        Assert.Equal(PodmanService.Image, running.GetProperty("template").GetProperty("name").GetString());
        Assert.Equal(id.ToString(), await MachineIdOfRunningContainerAsync(container));
        await MachineTests.ActAsync(tenant, HttpMethod.Post, $"/api/v1/machines/{id}/stop");
        await MachineTests.WaitAsync(tenant, id, "stopped");
        Assert.DoesNotContain(container, await stack.Podman.ContainerNamesAsync());
        await MachineTests.ActAsync(tenant, HttpMethod.Post, $"/api/v1/machines/{id}/start");
        await MachineTests.WaitAsync(tenant, id, "running");
        Assert.Equal(id.ToString(), await MachineIdOfRunningContainerAsync(container));
        await MachineTests.ActAsync(tenant, HttpMethod.Delete, $"/api/v1/machines/{id}");
        await MachineTests.WaitAsync(tenant, id, "destroyed");

        Assert.DoesNotContain(container, await stack.Podman.ContainerNamesAsync());
        var history = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/events");
        Assert.Equal(
            ["MachineRequested", "MachineRunning", "MachineStopRequested", "MachineStopped", "MachineStartRequested", "MachineRunning", "MachineDestroyRequested", "MachineDestroyed"],
            history.EnumerateArray().Select(e => e.GetProperty("type").GetString()).Where(t => t != "MachineStepCompleted"));
    }

    [Fact]
    public async Task A_container_whose_command_fails_is_failed_with_its_exit_code_and_the_tail_of_its_logs()
    {
        var tenant = await TenantAsync();
        var id = await MachineTests.CreateAsync(tenant, new { kind = "container", template = PodmanService.Image, vcpus = 1, memoryMiB = 64, command = new[] { "/bin/sh", "-c", "echo 'no config found' >&2; exit 7" } });

        var failed = await MachineTests.WaitAsync(tenant, id, "failed");

        Assert.Equal(7, failed.GetProperty("exitCode").GetInt32());
        Assert.Equal("its command exited with code 7: no config found", failed.GetProperty("lastError").GetString());
        await MachineTests.ActAsync(tenant, HttpMethod.Delete, $"/api/v1/machines/{id}");
        await MachineTests.WaitAsync(tenant, id, "destroyed");
        Assert.DoesNotContain($"pm-{id:N}", await stack.Podman.ContainerNamesAsync());
    }

    [Theory]
    [InlineData("""{"kind":"container","vcpus":1,"memoryMiB":64,"template":"localhost/pmt-no-such-image:latest"}""")]
    [InlineData("""{"kind":"container","vcpus":1,"memoryMiB":64}""")]
    [InlineData("""{"kind":"container","vcpus":1,"memoryMiB":64,"template":"sandbox-host"}""")]
    public async Task A_container_machine_without_an_image_the_host_holds_is_a_422_naming_the_template(string body)
    {
        var tenant = await TenantAsync();

        var response = await tenant.PostAsync("/api/v1/machines", new StringContent(body, Encoding.UTF8, "application/json"));

        var problem = await GatewayTests.AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        Assert.True(problem.GetProperty("errors").TryGetProperty("template", out _), $"the problem names template: {problem}");
        Assert.Empty((await tenant.GetFromJsonAsync<JsonElement>("/api/v1/machines")).GetProperty("items").EnumerateArray());
    }

    /// <summary>A new tenant's admin, once the host has reported the engine's image as a template.</summary>
    private async Task<HttpClient> TenantAsync()
    {
        using var admin = await stack.Platform.AdminAsync();
        var (_, tenant) = await ApiKeyTests.TenantWithAdminAsync(admin);
        await Eventually.TrueAsync(async () => (await tenant.GetStringAsync("/api/v1/templates")).Contains(PodmanService.Image, StringComparison.Ordinal),
            TimeSpan.FromSeconds(30), "the host agent reports the podman service's image as a template");
        return tenant;
    }

    /// <summary>The machine-id label of the container by that name, which must be running.</summary>
    private async Task<string> MachineIdOfRunningContainerAsync(string container)
    {
        var state = (await stack.Podman.RunAsync("inspect", "--format", "{{.State.Status}} {{index .Config.Labels \"platform.machine-id\"}}", container)).Trim().Split(' ');
        Assert.Equal("running", state[0]);
        return state[1];
    }
}
