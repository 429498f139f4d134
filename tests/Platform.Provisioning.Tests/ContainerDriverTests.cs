using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Platform.Contracts.Provisioning;
using Platform.HostAgent;
using Platform.HostAgent.Drivers;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.Provisioning.Tests;

/// <summary>The host agent's container driver against a real podman service, as the agent calls it.</summary>
[Collection(PodmanCollection.Name)]
public sealed class ContainerDriverTests(PodmanFixture fixture, ITestOutputHelper output) : IAsyncLifetime
{
    private readonly List<Guid> _machines = [];
    private static readonly string SnapshotRoot = Path.Combine(Path.GetTempPath(), "pmt-container-snapshots-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly HostSnapshots _snapshots = new(SnapshotRoot);
    private readonly List<Guid> _snapshotIds = [];
    private ContainerDriver _driver = null!;

    [Fact]
    public async Task A_paused_containers_snapshot_is_an_image_that_no_template_lists_and_a_machine_launched_from_it_has_its_files()
    {
        var source = await _driver.LaunchAsync(Launch(["/bin/sh", "-c", "echo kept-by-snapshot > /kept; exec sleep 600"]), CancellationToken.None);
        await Eventually.TrueAsync(async () => await RunAsync(source, "cat /kept") == "kept-by-snapshot\n", TimeSpan.FromSeconds(10), "the source wrote its file");
        await ((IPausableMachine)source).PauseAsync(CancellationToken.None);
        var snapshotId = Guid.NewGuid();
        _snapshotIds.Add(snapshotId);

        var saved = await ((ISnapshottableMachine)source).SaveSnapshotAsync(_snapshots.Prepare(snapshotId), CancellationToken.None);
        _snapshots.Finish(new SnapshotManifest(snapshotId, Guid.NewGuid(), "container", saved.Contents, saved.SizeBytes, DateTimeOffset.UtcNow));
        var stillPaused = (await fixture.Docker.InspectContainerAsync(ContainerDriver.ContainerName(_machines[0]), CancellationToken.None))!.State.Paused;
        await _driver.RefreshTemplatesAsync(CancellationToken.None);
        await using var copy = await _driver.LaunchAsync(Launch(["sleep", "600"]) with { FromSnapshot = snapshotId }, CancellationToken.None);
        var seen = await RunAsync(copy, "cat /kept");
        await source.DisposeAsync();

        Assert.True(stillPaused, "the paused source stays paused while it is committed");
        Assert.Equal("filesystem", saved.Contents);
        Assert.True(saved.SizeBytes > 0);
        Assert.Single(_driver.Templates);
        Assert.Equal("kept-by-snapshot\n", seen);
    }

    private static async Task<string> RunAsync(IRunningMachine machine, string script)
    {
        await using var process = await ((Platform.Provisioning.Drivers.Guests.IGuestAccess)machine).StartAsync(
            new Platform.Provisioning.Drivers.Guests.GuestCommand(["/bin/sh", "-c", script]), CancellationToken.None);
        process.StandardInput.Close();
        var output = await new StreamReader(process.StandardOutput).ReadToEndAsync();
        await process.Exited.WaitAsync(TimeSpan.FromSeconds(30));
        return output;
    }

    [Fact]
    public async Task The_driver_reports_the_engines_images_as_container_templates()
    {
        var image = (await fixture.Docker.InspectImageAsync(PodmanService.Image, CancellationToken.None))!;

        var template = Assert.Single(_driver.Templates);

        Assert.Equal(new TemplateOnHost(PodmanService.Image, image.ID[7..19], "container", image.ID[7..], []), template with { Snapshots = [] });
        Assert.Equal(("container", "container", 0), (_driver.Capacity.Name, _driver.Capacity.Kind, _driver.Capacity.MaxDiskMiB));
    }

    [Fact]
    public async Task A_container_machine_runs_with_its_shape_labels_and_hostname_stops_and_leaves_nothing_when_disposed()
    {
        var launch = Launch(null, memoryMiB: 48, vcpus: 1);

        var clock = Stopwatch.StartNew();
        var machine = await _driver.LaunchAsync(launch, CancellationToken.None);
        output.WriteLine($"container create→running: {clock.Elapsed.TotalMilliseconds:0} ms");
        var inspection = (await fixture.Docker.InspectContainerAsync(ContainerDriver.ContainerName(launch.MachineId), CancellationToken.None))!;
        await machine.StopAsync(CancellationToken.None);
        var exit = await machine.Exited.WaitAsync(TimeSpan.FromSeconds(30));
        await machine.DisposeAsync();

        Assert.True(inspection.State.Running);
        Assert.Equal((48L * 1024 * 1024, 1_000_000_000L, 64L), (inspection.HostConfig.Memory, inspection.HostConfig.NanoCPUs, inspection.HostConfig.PidsLimit));
        Assert.Equal(launch.MachineId.ToString(), inspection.Config.Labels![ContainerDriver.MachineIdLabel]);
        Assert.Equal(launch.TenantId.ToString(), inspection.Config.Labels[ContainerDriver.TenantIdLabel]);
        Assert.Equal(launch.Name, inspection.Config.Hostname);
        Assert.Equal("none", inspection.HostConfig.NetworkMode);
        Assert.Null(machine.Network);
        Assert.Equal(0, exit.ExitCode);
        Assert.DoesNotContain(ContainerDriver.ContainerName(launch.MachineId), await fixture.Podman.ContainerNamesAsync());
    }

    [Fact]
    public async Task A_paused_container_is_paused_in_the_engine_until_resumed_and_a_paused_one_still_stops()
    {
        var launch = Launch(["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]);
        var machine = await _driver.LaunchAsync(launch, CancellationToken.None);
        var pausable = Assert.IsAssignableFrom<IPausableMachine>(machine);

        await pausable.PauseAsync(CancellationToken.None);
        var paused = (await fixture.Docker.InspectContainerAsync(ContainerDriver.ContainerName(launch.MachineId), CancellationToken.None))!.State;
        var adopted = await _driver.AdoptAsync(launch, CancellationToken.None);
        await pausable.ResumeAsync(CancellationToken.None);
        var resumed = (await fixture.Docker.InspectContainerAsync(ContainerDriver.ContainerName(launch.MachineId), CancellationToken.None))!.State;
        await pausable.PauseAsync(CancellationToken.None);
        await machine.StopAsync(CancellationToken.None);
        var exit = await machine.Exited.WaitAsync(TimeSpan.FromSeconds(30));
        await machine.DisposeAsync();
        await adopted!.DisposeAsync();

        Assert.True(paused.Paused);
        Assert.True(Assert.IsAssignableFrom<IPausableMachine>(adopted).IsPaused, "an agent that restarts finds it paused");
        Assert.False(pausable.IsPaused);
        Assert.True(resumed.Running && !resumed.Paused);
        Assert.Equal(0, exit.ExitCode);
    }

    [Fact]
    public async Task A_command_that_finishes_ends_the_machine_and_a_failing_one_carries_its_exit_code_and_log_tail()
    {
        await using var finishing = await _driver.LaunchAsync(Launch(["/bin/sh", "-c", "echo done"]), CancellationToken.None);
        await using var failing = await _driver.LaunchAsync(Launch(["/bin/sh", "-c", "echo starting; echo 'config missing' >&2; exit 7"]), CancellationToken.None);

        var finished = await finishing.Exited.WaitAsync(TimeSpan.FromSeconds(30));
        var failed = await failing.Exited.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(new MachineExit(0, "its command finished"), finished);
        Assert.Equal(new MachineExit(7, "its command exited with code 7: config missing"), failed);
    }

    [Fact]
    public async Task A_machine_over_its_memory_limit_ends_killed_with_a_reason_naming_the_limit()
    {
        await using var hog = await _driver.LaunchAsync(Launch(["/bin/sh", "-c", "tail /dev/zero"], memoryMiB: 32), CancellationToken.None);

        var exit = await hog.Exited.WaitAsync(TimeSpan.FromSeconds(60));

        // Docker reports the kill as out-of-memory ("killed for going over its memory limit (32 MiB)"); podman 4.3
        // cannot say (see ContainerState.OomKilled), so the reason names the signal and the limit.
        Assert.Equal(137, exit.ExitCode);
        Assert.Contains("32 MiB", exit.Reason, StringComparison.Ordinal);
        Assert.Contains("memory limit", exit.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task After_an_agent_crash_the_leftover_container_is_removed_by_machine_id_and_a_new_launch_recreates_it()
    {
        var launch = Launch(null);
        // The crashed agent's machine: never stopped nor disposed, its container still running.
        _ = await _driver.LaunchAsync(launch, CancellationToken.None);
        var name = ContainerDriver.ContainerName(launch.MachineId);
        var restarted = NewDriver();

        await restarted.RemoveLeftoversAsync(launch.MachineId, CancellationToken.None);
        var afterCrash = await fixture.Podman.ContainerNamesAsync();
        await restarted.RemoveLeftoversAsync(launch.MachineId, CancellationToken.None);
        await using (var again = await restarted.LaunchAsync(launch, CancellationToken.None))
        {
            // A launch over a container left behind replaces it.
            await using var onceMore = await restarted.LaunchAsync(launch, CancellationToken.None);
            Assert.Single(await fixture.Podman.ContainerNamesAsync(), n => n == name);
        }

        await restarted.CleanUpAsync(launch.MachineId, CancellationToken.None);

        Assert.DoesNotContain(name, afterCrash);
        Assert.DoesNotContain(name, await fixture.Podman.ContainerNamesAsync());
    }

    [Fact]
    public async Task A_launch_of_an_image_the_engine_does_not_hold_fails_and_a_command_that_cannot_run_ends_the_machine_with_the_reason()
    {
        var missing = await Assert.ThrowsAsync<LaunchFailedException>(() => _driver.LaunchAsync(
            Launch(null) with { Template = new TemplateRef("localhost/pmt-gone:latest", "0123456789ab") }, CancellationToken.None));
        var unrunnable = Launch(["/bin/no-such-program"]);
        // The guest agent runs the command, as a sandbox's does: one that cannot be run ends at once, as a shell's would.
        await using (var machine = await _driver.LaunchAsync(unrunnable, CancellationToken.None))
        {
            var exit = await machine.Exited.WaitAsync(TimeSpan.FromSeconds(30));

            Assert.Equal(127, exit.ExitCode);
            Assert.Contains("/bin/no-such-program", exit.Reason, StringComparison.Ordinal);
        }

        Assert.Contains("localhost/pmt-gone:latest@0123456789ab", missing.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_an_engine_at_the_socket_the_host_offers_no_container_driver()
    {
        var state = Directory.CreateDirectory($"/tmp/pmt-agent-{Guid.NewGuid():N}");
        try
        {
            var options = new AgentOptions { StatePath = state.FullName, Drivers = ["container"], Container = new ContainerOptions { Socket = "/tmp/pmt-no-engine.sock" } };
            var networks = new Platform.HostAgent.Networking.TenantNetworks(options, HostIdentity.Load(options), NullLogger<Platform.HostAgent.Networking.TenantNetworks>.Instance);

            Assert.Empty(DriverSetup.Create(options, networks, new LocalAddresses(options.StatePath), new HostSnapshots(Path.Combine(options.StatePath, "snapshots")),
                new TemplateShelf(options.TemplatesPath, NullLogger.Instance), NullLoggerFactory.Instance));
        }
        finally
        {
            state.Delete(recursive: true);
        }
    }

    public async Task InitializeAsync()
    {
        _driver = NewDriver();
        await _driver.RefreshTemplatesAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        foreach (var machineId in _machines)
        {
            await _driver.CleanUpAsync(machineId, CancellationToken.None);
        }

        foreach (var snapshotId in _snapshotIds)
        {
            await _driver.RemoveSnapshotAsync(_snapshots.DirectoryOf(snapshotId), CancellationToken.None);
            _snapshots.Delete(snapshotId);
        }

        if (Directory.Exists(SnapshotRoot))
        {
            Directory.Delete(SnapshotRoot, recursive: true);
        }
    }

    private ContainerDriver NewDriver() =>
        new(fixture.Docker, new ContainerOptions { Socket = fixture.Podman.Socket, CgroupParent = fixture.Podman.CgroupParent, MaxProcesses = 64 }, _snapshots, NullLogger<ContainerDriver>.Instance);

    private LaunchMachine Launch(IReadOnlyList<string>? command, int memoryMiB = 64, int vcpus = 1)
    {
        var machineId = Guid.NewGuid();
        _machines.Add(machineId);
        var template = _driver.Templates.Single();
        return new LaunchMachine(machineId, Guid.NewGuid(), Guid.NewGuid(), "pmt-" + machineId.ToString("N")[..8], "container",
            new TemplateRef(template.Name, template.Version), new MachineShape(vcpus, memoryMiB, 0), command, "auto", null);
    }
}
