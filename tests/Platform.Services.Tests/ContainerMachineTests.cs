using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Platform.Contracts.Provisioning;
using Platform.Provisioning.Drivers.Container;
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
        var id = await tenant.CreateMachineAsync(new { name = "boxed", kind = "container", template = PodmanService.Image, vcpus = 1, memoryMiB = 64, labels = new { app = "web" } });
        var running = await tenant.WaitForMachineAsync(id, "running");
        output.WriteLine($"container machine: POST → running in {clock.Elapsed.TotalMilliseconds:0} ms; the agent: "
            + stack.Platform.HostAgent!.Output.LastOrDefault(l => l.Contains(id.ToString(), StringComparison.Ordinal) && l.Contains("running after", StringComparison.Ordinal)));
        var container = $"pm-{id:N}";

        Assert.Equal(("container", "container"), (running.GetProperty("kind").GetString(), running.GetProperty("driver").GetString()));
        Assert.Equal(PodmanService.Image, running.GetProperty("template").GetProperty("name").GetString());
        Assert.Equal(id.ToString(), await MachineIdOfRunningContainerAsync(container));
        // The agent found podman and asked for userns=auto: root in the container is an unprivileged host id.
        using (var docker = new ContainerEngine(stack.Podman.Socket))
        {
            var pid = (await docker.InspectContainerAsync(container, CancellationToken.None))!.State.Pid;
            var map = File.ReadAllText($"/proc/{pid}/uid_map").Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal("0", map[0]);
            Assert.True(long.Parse(map[1], System.Globalization.CultureInfo.InvariantCulture) >= 65536, $"root maps to host id {map[1]}");
        }

        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/stop");
        await tenant.WaitForMachineAsync(id, "stopped");
        Assert.DoesNotContain(container, await stack.Podman.ContainerNamesAsync());
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/start");
        await tenant.WaitForMachineAsync(id, "running");
        Assert.Equal(id.ToString(), await MachineIdOfRunningContainerAsync(container));
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");

        Assert.DoesNotContain(container, await stack.Podman.ContainerNamesAsync());
        var history = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/events");
        Assert.Equal(
            ["MachineRequested", "MachineRunning", "MachineStopRequested", "MachineStopped", "MachineStartRequested", "MachineRunning", "MachineDestroyRequested", "MachineDestroyed"],
            history.EnumerateArray().Select(e => e.GetProperty("type").GetString()).Where(t => t != "MachineStepCompleted"));
    }

    /// <summary>
    /// The command fails when it finds the mark an earlier run left in the container's filesystem, so a machine that runs
    /// after a restart or a recreate runs in a container with nothing of the one before.
    /// </summary>
    [Fact]
    public async Task A_recreated_container_machine_runs_in_a_new_container_from_its_image_as_after_a_restart_and_none_is_left_after_destroy()
    {
        var (tenantId, tenant) = await TenantWithIdAsync();
        var id = await tenant.CreateMachineAsync(new { kind = "container", template = PodmanService.Image, vcpus = 1, memoryMiB = 64,
            command = new[] { "/bin/sh", "-c", "test -e /seen && exit 7; touch /seen; exec sleep 1000" } });
        await tenant.WaitForMachineAsync(id, "running");
        var first = await ContainerIdAsync(id);

        await RunsAgainAfterAsync(tenant, id, "restart");
        var restarted = await ContainerIdAsync(id);
        var recreate = await RunsAgainAfterAsync(tenant, id, "recreate");
        var recreated = await ContainerIdAsync(id);
        await RepeatFreshLaunchAsync(tenantId, await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}"), recreate);
        Assert.Equal(recreated, await ContainerIdAsync(id));
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/stop");
        await tenant.WaitForMachineAsync(id, "stopped");
        await RunsAgainAfterAsync(tenant, id, "recreate");
        var recreatedWhenStopped = await ContainerIdAsync(id);

        Assert.Equal(4, new[] { first, restarted, recreated, recreatedWhenStopped }.Distinct().Count());
        Assert.Equal([recreatedWhenStopped], await ContainerIdsAsync(id));
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
        Assert.Empty(await ContainerIdsAsync(id));
        Assert.DoesNotContain($"pm-{id:N}", await stack.Podman.ContainerNamesAsync());
    }

    [Fact]
    public async Task A_container_whose_command_fails_is_failed_with_its_exit_code_and_the_tail_of_its_logs()
    {
        var tenant = await TenantAsync();
        var id = await tenant.CreateMachineAsync(new { kind = "container", template = PodmanService.Image, vcpus = 1, memoryMiB = 64, command = new[] { "/bin/sh", "-c", "echo 'no config found' >&2; exit 7" } });

        var failed = await tenant.WaitForMachineAsync(id, "failed");

        Assert.Equal(7, failed.GetProperty("exitCode").GetInt32());
        Assert.Equal("its command exited with code 7: no config found", failed.GetProperty("lastError").GetString());
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
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

        var problem = await Problems.AssertAsync(response, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        Assert.True(problem.GetProperty("errors").TryGetProperty("template", out _), $"the problem names template: {problem}");
        Assert.Empty((await tenant.GetFromJsonAsync<JsonElement>("/api/v1/machines")).GetProperty("items").EnumerateArray());
    }

    /// <summary>A new tenant's admin, once the host has reported the engine's image as a template.</summary>
    private async Task<HttpClient> TenantAsync() => (await TenantWithIdAsync()).Client;

    private async Task<(Guid Id, HttpClient Client)> TenantWithIdAsync()
    {
        using var admin = await stack.Platform.AdminAsync();
        var (tenantId, tenant) = await admin.CreateTenantWithAdminAsync();
        await Eventually.TrueAsync(async () => (await tenant.GetStringAsync("/api/v1/templates")).Contains(PodmanService.Image, StringComparison.Ordinal),
            TimeSpan.FromSeconds(30), "the host agent reports the podman service's image as a template");
        return (tenantId, tenant);
    }

    /// <summary>Asks for the action and waits until its operation succeeded (the machine runs again, and did not fail on the way); its id.</summary>
    private static async Task<Guid> RunsAgainAfterAsync(HttpClient tenant, Guid id, string action)
    {
        var operation = await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/{action}");
        await tenant.WaitForMachineAsync(id, "running");
        var done = await tenant.GetFromJsonAsync<JsonElement>(operation);
        Assert.Equal((action, "succeeded"), (done.GetProperty("type").GetString(), done.GetProperty("status").GetString()));
        return done.GetProperty("id").GetGuid();
    }

    /// <summary>Sends the machine's host agent a copy of the fresh launch of <paramref name="operationId"/>, as a redelivery would, and waits for its answer.</summary>
    private async Task RepeatFreshLaunchAsync(Guid tenantId, JsonElement machine, Guid operationId)
    {
        var reports = new ConcurrentQueue<MachineLaunched>();
        await using var bus = await TestBus.StartAsync(stack.Platform.Environment.VirtualHost, "recreate-test", s => s.AddSingleton(reports), c => c.AddConsumer<LaunchReports>());
        var template = machine.GetProperty("template");
        var copy = new LaunchMachine(machine.GetProperty("id").GetGuid(), tenantId, operationId, machine.GetProperty("name").GetString()!, "container",
            new TemplateRef(template.GetProperty("name").GetString()!, template.GetProperty("version").GetString()!), new MachineShape(1, 64, 0),
            machine.GetProperty("command").EnumerateArray().Select(a => a.GetString()!).ToList(), "auto", null, Fresh: true);

        await (await bus.Bus.GetSendEndpoint(HostAgentQueue.AddressOf(machine.GetProperty("hostId").GetGuid()))).Send(copy);

        await Eventually.TrueAsync(() => reports.Any(r => r.MachineId == copy.MachineId && r.OperationId == operationId), TimeSpan.FromSeconds(30), "the agent answers the copy");
        Assert.Equal(0, reports.Single(r => r.MachineId == copy.MachineId).LaunchMilliseconds);
    }

    public sealed class LaunchReports(ConcurrentQueue<MachineLaunched> reports) : IConsumer<MachineLaunched>
    {
        public Task Consume(ConsumeContext<MachineLaunched> context)
        {
            reports.Enqueue(context.Message);
            return Task.CompletedTask;
        }
    }

    /// <summary>The id of the machine's container, which must be running.</summary>
    private async Task<string> ContainerIdAsync(Guid machineId)
    {
        var state = (await stack.Podman.RunAsync("inspect", "--format", "{{.State.Status}} {{.Id}}", $"pm-{machineId:N}")).Trim().Split(' ');
        Assert.Equal("running", state[0]);
        return state[1];
    }

    /// <summary>The ids of the machine's containers (by its label), running or not.</summary>
    private async Task<IReadOnlyList<string>> ContainerIdsAsync(Guid machineId) =>
        (await stack.Podman.RunAsync("ps", "--all", "--no-trunc", "--filter", $"label=platform.machine-id={machineId}", "--format", "{{.ID}}"))
            .Split('\n', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>The machine-id label of the container by that name, which must be running.</summary>
    private async Task<string> MachineIdOfRunningContainerAsync(string container)
    {
        var state = (await stack.Podman.RunAsync("inspect", "--format", "{{.State.Status}} {{index .Config.Labels \"platform.machine-id\"}}", container)).Trim().Split(' ');
        Assert.Equal("running", state[0]);
        return state[1];
    }
}
