using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Provisioning.Drivers.Container;
using Platform.Provisioning.Drivers.Networking;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>A podman service of its own and a stack whose one host offers micro-VMs, sandboxes and containers.</summary>
public sealed class AdoptionStack : IAsyncLifetime
{
    private PodmanService? _podman;
    private PlatformStack? _platform;

    public PodmanService Podman => _podman!;

    public PlatformStack Platform => _platform!;

    public async Task InitializeAsync()
    {
        try
        {
            _podman = await PodmanService.StartAsync();
            _platform = new PlatformStack(["microvm", "sandbox", "container"],
                ("Platform__Agent__Container__Socket", _podman.Socket),
                ("Platform__Agent__Container__CgroupParent", _podman.CgroupParent),
                ("Platform__Agent__Container__UserNamespace", "auto"),
                // No warm pool: its refills would only compete with the machines under test for the CPUs.
                ("Platform__Agent__SnapshotPoolSize", "0"));
            await _platform.InitializeAsync();
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    public async Task DisposeAsync()
    {
        try
        {
            if (_platform is not null)
            {
                await _platform.DisposeAsync();
            }
        }
        finally
        {
            if (_podman is not null)
            {
                await _podman.DisposeAsync();
            }

            (_podman, _platform) = (null, null);
        }
    }
}

/// <summary>Machines outlive their host agent: a restarted agent adopts what still runs instead of failing it.</summary>
public sealed class MachineAdoptionTests(AdoptionStack stack) : IClassFixture<AdoptionStack>
{
    private const string MachineIdLabel = "platform.machine-id";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_micro_vm_a_sandbox_and_a_container_run_on_through_a_sigkill_of_the_host_agent_are_adopted_without_a_restart_and_destroyed_without_a_trace()
    {
        using var admin = await stack.Platform.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var vm = await tenant.CreateMachineAsync(new { name = "vm", kind = "microvm", vcpus = 1, memoryMiB = 128 });
        var sandbox = await tenant.CreateMachineAsync(new { name = "box", kind = "sandbox", vcpus = 1, memoryMiB = 64 });
        var container = await tenant.CreateMachineAsync(new { name = "ctr", kind = "container", template = PodmanService.Image, vcpus = 1, memoryMiB = 64 });
        var machines = new[] { vm, sandbox, container };
        using var docker = new ContainerEngine(stack.Podman.Socket);
        try
        {
            foreach (var id in machines)
            {
                await tenant.WaitForMachineAsync(id, "running");
            }

            var qemu = QemuProcessOf(vm);
            var sandboxProcesses = MachineTests.CgroupProcesses(sandbox);
            var containerId = Assert.Single(await docker.ListContainersAsync($"{MachineIdLabel}={container}", CancellationToken.None)).ID;
            var eventsBefore = new Dictionary<Guid, int>();
            foreach (var id in machines)
            {
                eventsBefore[id] = (await tenant.MachineEventTypesAsync(id)).Count;
            }

            await stack.Platform.CrashAndRestartHostAgentAsync();
            // The restarted agent says what it made of each machine its record says runs.
            await Eventually.TrueAsync(() => machines.All(id => stack.Platform.HostAgent!.Output.Any(line =>
                    line.Contains(id.ToString(), StringComparison.Ordinal) && (line.Contains("adopted", StringComparison.Ordinal) || line.Contains("ended while", StringComparison.Ordinal)))),
                Patience, "the restarted agent reconciles every machine");

            foreach (var id in machines)
            {
                var machine = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}");
                Assert.Equal("running", machine.GetProperty("state").GetString());
                // No exit, launch or restart recorded: to the control plane nothing happened.
                Assert.Equal(eventsBefore[id], (await tenant.MachineEventTypesAsync(id)).Count);
            }

            Assert.Equal(qemu, QemuProcessOf(vm));
            Assert.StartsWith("qemu-system", Process.GetProcessById(qemu).ProcessName, StringComparison.Ordinal);
            Assert.Equal(sandboxProcesses, MachineTests.CgroupProcesses(sandbox));
            Assert.True((await docker.InspectContainerAsync(containerId, CancellationToken.None))?.State.Running);

            // The adopted machines are supervised again: one that ends now is noticed.
            MachineTests.KillCgroupProcesses(sandbox);

            await Eventually.TrueAsync(async () =>
                (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{sandbox}")).GetProperty("state").GetString() != "running",
                Patience, "the agent notices that the adopted sandbox ended");
            var events = await tenant.MachineEventTypesAsync(sandbox);
            Assert.Contains(events.Skip(eventsBefore[sandbox]), type => type is "MachineFailed" or "MachineStopped");
        }
        finally
        {
            foreach (var id in machines)
            {
                await tenant.DeleteAsync($"/api/v1/machines/{id}");
            }

            foreach (var id in machines)
            {
                await tenant.WaitForMachineAsync(id, "destroyed");
            }
        }

        Assert.False(Directory.Exists(Path.Combine(stack.Platform.MicroVmRunPath, "vm", vm.ToString("N"))), "the micro-VM's work directory is gone");
        Assert.Empty(await NetworkNamespace.ListAsync($"pm-{vm:N}"));
        Assert.Empty(MachineTests.CgroupProcesses(sandbox));
        Assert.Empty(await docker.ListContainersAsync($"{MachineIdLabel}={container}", CancellationToken.None));
    }

    private int QemuProcessOf(Guid vm) =>
        int.Parse(File.ReadAllText(Path.Combine(stack.Platform.MicroVmRunPath, "vm", vm.ToString("N"), "qemu.pid")).Trim(), System.Globalization.CultureInfo.InvariantCulture);
}
