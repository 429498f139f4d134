using Platform.Provisioning.Drivers.Container;
using Platform.Testing;

namespace Platform.Provisioning.Tests;

/// <summary>The container engine (Docker.DotNet, with the platform's policy) against a real podman service (its Docker-compatible API).</summary>
[Collection(PodmanCollection.Name)]
public sealed class ContainerEngineTests(PodmanFixture fixture) : IAsyncLifetime
{
    private static readonly ContainerLimits Small = new(64L * 1024 * 1024, 0.5, 32);
    private readonly List<string> _created = [];
    private ContainerEngine Docker => fixture.Docker;

    [Fact]
    public async Task A_container_is_created_started_inspected_stopped_and_removed_with_its_limits_and_labels()
    {
        var name = NewName();

        var id = await CreateAsync(name, null, labels: new Dictionary<string, string> { ["pmt.test"] = "lifecycle" });
        var created = await Docker.InspectContainerAsync(name, CancellationToken.None);
        await Docker.StartContainerAsync(id, CancellationToken.None);
        await Docker.StartContainerAsync(id, CancellationToken.None);
        var running = await Docker.InspectContainerAsync(id, CancellationToken.None);
        await Docker.StopContainerAsync(id, TimeSpan.FromSeconds(5), CancellationToken.None);
        await Docker.StopContainerAsync(id, TimeSpan.FromSeconds(5), CancellationToken.None);
        var stopped = await Docker.InspectContainerAsync(id, CancellationToken.None);
        var listed = await Docker.ListContainersAsync("pmt.test=lifecycle", CancellationToken.None);
        var removed = await Docker.RemoveContainerAsync(id, CancellationToken.None);
        var removedAgain = await Docker.RemoveContainerAsync(id, CancellationToken.None);

        Assert.Equal(("created", false), (created!.State.Status, created.State.Running));
        Assert.Equal(id, created.ID);
        Assert.Equal(("running", true), (running!.State.Status, running.State.Running));
        Assert.True(running.State.Pid > 0);
        Assert.Equal((64L * 1024 * 1024, 64L * 1024 * 1024, 500_000_000L, 32L), (running.HostConfig.Memory, running.HostConfig.MemorySwap, running.HostConfig.NanoCPUs, running.HostConfig.PidsLimit));
        Assert.Equal("lifecycle", running.Config.Labels!["pmt.test"]);
        Assert.Null(running.NetworkSettings.PrimaryEndpoint());
        Assert.Equal(("exited", 0), (stopped!.State.Status, stopped.State.ExitCode));
        Assert.Equal([id], listed.Select(c => c.ID));
        Assert.True(removed);
        Assert.False(removedAgain);
        Assert.Null(await Docker.InspectContainerAsync(id, CancellationToken.None));
        Assert.DoesNotContain(name, await fixture.Podman.ContainerNamesAsync());
    }

    [Fact]
    public async Task Waiting_returns_the_exit_code_and_logs_are_split_into_output_and_errors()
    {
        var id = await CreateAsync(NewName(), ["/bin/sh", "-c", "echo out-1; echo err-1 >&2; echo out-2; printf 'ünïcode\\n' >&2; exit 3"]);
        await Docker.StartContainerAsync(id, CancellationToken.None);

        var exitCode = await Docker.WaitContainerAsync(id, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        var logs = await Docker.LogsAsync(id, null, CancellationToken.None);
        var tail = await Docker.LogsAsync(id, 1, CancellationToken.None);

        Assert.Equal(3, exitCode);
        Assert.Equal("out-1\nout-2\n", logs.Output);
        Assert.Equal("err-1\nünïcode\n", logs.Errors);
        Assert.Equal(1, tail.Output.Count(c => c == '\n') + tail.Errors.Count(c => c == '\n'));
    }

    [Fact]
    public async Task Stats_answer_once_for_a_running_container()
    {
        var id = await CreateAsync(NewName(), null);
        await Docker.StartContainerAsync(id, CancellationToken.None);

        var stats = await Docker.StatsAsync(id, CancellationToken.None);

        Assert.Equal(64UL * 1024 * 1024, stats.MemoryStats.Limit);
        Assert.InRange(stats.MemoryStats.Usage, 1UL, 64UL * 1024 * 1024);
        Assert.True(stats.PidsStats.Current >= 1, $"it runs its shell and sleep ({stats.PidsStats.Current})");
        Assert.True(stats.CPUStats.CPUUsage.TotalUsage > 0);
        Assert.True(DateTime.UtcNow - stats.Read.ToUniversalTime() < TimeSpan.FromMinutes(1));
    }

    /// <summary>
    /// The kernel enforces the limit here: the hog is killed with SIGKILL (137) and the shell goes on to say so. Docker
    /// would also set <c>OOMKilled</c>; podman 4.3 does not record it (containers/podman#13102, fixed in podman 5), so
    /// this asserts what the kernel did and not the engine's flag.
    /// </summary>
    [Fact]
    public async Task A_process_over_its_containers_memory_limit_is_killed_by_the_kernel()
    {
        var id = await CreateAsync(NewName(), ["/bin/sh", "-c", "echo allocating; tail /dev/zero; echo \"tail ended with $?\""], Small with { MemoryBytes = 32L * 1024 * 1024 });
        await Docker.StartContainerAsync(id, CancellationToken.None);

        var exitCode = await Docker.WaitContainerAsync(id, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        var logs = await Docker.LogsAsync(id, null, CancellationToken.None);

        Assert.Equal(0, exitCode);
        Assert.Equal("allocating\ntail ended with 137\n", logs.Output);
    }

    [Fact]
    public async Task The_engines_refusal_is_a_typed_exception_with_its_message()
    {
        var missingImage = await Assert.ThrowsAsync<ContainerEngineException>(() => Docker.CreateContainerAsync(
            new ContainerSpec(NewName(), "localhost/pmt-no-such-image:latest", null, new Dictionary<string, string>(), Small, CgroupParent: fixture.Podman.CgroupParent), CancellationToken.None));
        var name = NewName();
        await CreateAsync(name, null);
        var taken = await Assert.ThrowsAsync<ContainerEngineException>(() => CreateAsync(name, null));
        var missingContainer = await Assert.ThrowsAsync<ContainerEngineException>(() => Docker.StartContainerAsync("pmt-no-such-container", CancellationToken.None));
        using var nowhere = new ContainerEngine("/tmp/pmt-no-such-socket.sock");
        var unanswered = await Assert.ThrowsAsync<ContainerEngineException>(() => nowhere.PingAsync(CancellationToken.None));

        Assert.Equal(404, missingImage.StatusCode);
        Assert.Contains("pmt-no-such-image", missingImage.Message, StringComparison.Ordinal);
        // Docker answers a taken name with 409 Conflict, podman 4.3 with 500; both say why.
        Assert.Contains(taken.StatusCode, new int?[] { 409, 500 });
        Assert.Contains("already in use", taken.Message, StringComparison.Ordinal);
        Assert.True(missingContainer.IsNotFound);
        Assert.Contains("pmt-no-such-container", missingContainer.Message, StringComparison.Ordinal);
        Assert.Null(unanswered.StatusCode);
        Assert.Equal("the container engine at /tmp/pmt-no-such-socket.sock does not answer: there is no such socket", unanswered.Message);
        Assert.Throws<ArgumentException>(() => Docker.InspectContainerAsync("../images/json", CancellationToken.None).GetAwaiter().GetResult());
    }

    [Fact]
    public async Task Images_are_listed_and_inspected_by_reference()
    {
        await Docker.PingAsync(CancellationToken.None);

        var images = await Docker.ListImagesAsync(CancellationToken.None);
        var inspected = await Docker.InspectImageAsync(PodmanService.Image, CancellationToken.None);
        var missing = await Docker.InspectImageAsync("localhost/pmt-no-such-image:latest", CancellationToken.None);

        var image = Assert.Single(images);
        Assert.Equal([PodmanService.Image], image.Tags());
        Assert.Matches("^sha256:[0-9a-f]{64}$", image.ID);
        Assert.Equal(image.ID, inspected!.ID);
        Assert.True(inspected.Size > 1024 * 1024, "it holds busybox");
        Assert.Null(missing);
        await Assert.ThrowsAsync<ArgumentException>(() => Docker.InspectImageAsync("../containers/x", CancellationToken.None));
    }

    [Fact]
    public async Task The_engine_says_it_is_podman()
    {
        Assert.True(await Docker.IsPodmanAsync(CancellationToken.None));
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var id in _created)
        {
            await Docker.RemoveContainerAsync(id, CancellationToken.None);
        }
    }

    private async Task<string> CreateAsync(string name, IReadOnlyList<string>? command, ContainerLimits? limits = null, Dictionary<string, string>? labels = null)
    {
        var id = await Docker.CreateContainerAsync(
            new ContainerSpec(name, PodmanService.Image, command, labels ?? [], limits ?? Small, Hostname: name, CgroupParent: fixture.Podman.CgroupParent), CancellationToken.None);
        _created.Add(id);
        return id;
    }

    private static string NewName() => "pmt-" + Guid.NewGuid().ToString("N")[..12];
}
