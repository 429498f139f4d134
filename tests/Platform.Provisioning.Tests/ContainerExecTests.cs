using System.Text;
using Platform.Provisioning.Drivers.Container;
using Platform.Provisioning.Drivers.Guests;
using Platform.Testing;

namespace Platform.Provisioning.Tests;

/// <summary>
/// Commands run in real, running containers (podman's Docker-compatible service), forked by the guest agent that is
/// each container's first process.
/// </summary>
[Collection(PodmanCollection.Name)]
public class ContainerExecTests : IAsyncLifetime
{
    private static readonly ContainerLimits Small = new(64L * 1024 * 1024, 0.5, 32);
    private readonly PodmanFixture _fixture;
    private readonly bool _withGuestAgent;
    private readonly List<string> _containers = [];
    private ContainerGuest? _guest;

    public ContainerExecTests(PodmanFixture fixture)
        : this(fixture, withGuestAgent: true)
    {
    }

    protected ContainerExecTests(PodmanFixture fixture, bool withGuestAgent)
    {
        _fixture = fixture;
        _withGuestAgent = withGuestAgent;
    }

    private ContainerEngine Docker => _fixture.Docker;

    private ContainerGuest Guest => _guest ?? throw new InvalidOperationException("not initialized");

    public async Task InitializeAsync() => _guest = await StartContainerAsync(["sleep", "600"]);

    public async Task DisposeAsync()
    {
        if (_guest is not null)
        {
            await _guest.DisposeAsync();
        }

        foreach (var container in _containers)
        {
            await Docker.RemoveContainerAsync(container, CancellationToken.None);
        }
    }

    [Fact]
    public async Task A_command_is_forked_by_the_containers_guest_agent_or_started_by_the_engine_without_one()
    {
        var (code, output, _) = await RunAsync(new GuestCommand(["/bin/sh", "-c", "echo $PPID; tr '\\0' ' ' </proc/1/cmdline"]));

        Assert.Equal(0, code);
        Assert.Equal(_withGuestAgent, Guest.HasGuestAgent);
        // The agent is the container's pid 1; the engine's exec comes from outside its pid namespace (parent 0).
        Assert.StartsWith(_withGuestAgent ? $"1\n{GuestAgent.Inside} --socket " : "0\n", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_engines_stop_signal_reaches_the_containers_command_whose_exit_code_is_the_containers()
    {
        var container = await StartContainerAsync(["/bin/sh", "-c", "trap 'exit 42' TERM; echo ready; while true; do sleep 0.1; done"]);
        await using (container)
        {
            var id = _containers[^1];
            await Eventually.TrueAsync(async () => (await Docker.LogsAsync(id, null, CancellationToken.None)).Output.Contains("ready", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "the command runs");

            await Docker.StopContainerAsync(id, TimeSpan.FromSeconds(10), CancellationToken.None);

            Assert.Equal(42, await Docker.WaitContainerAsync(id, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)));
        }
    }

    [Fact]
    public async Task A_command_runs_in_the_container_and_its_output_input_and_exit_code_come_back()
    {
        var (code, output, errors) = await RunAsync(new GuestCommand(["/bin/sh", "-c", "read line; echo \"got $line on $(hostname)\"; echo oops >&2; exit 7"]), "hello\n");

        Assert.Equal(7, code);
        Assert.Equal("got hello on exec-test\n", output);
        Assert.Equal("oops\n", errors);
    }

    [Fact]
    public async Task A_command_gets_its_environment_directory_and_user()
    {
        var (code, output, _) = await RunAsync(new GuestCommand(["/bin/sh", "-c", "echo $GREETING; pwd; id -u; id -g"])
        {
            Environment = new Dictionary<string, string> { ["GREETING"] = "hi there" },
            WorkingDirectory = "/tmp",
            User = "1000:1001",
        });

        Assert.Equal(0, code);
        Assert.Equal("hi there\n/tmp\n1000\n1001\n", output);
    }

    [Fact]
    public async Task A_signal_reaches_the_command_and_a_missing_program_fails_with_the_engines_words()
    {
        await using var process = await Guest.StartAsync(new GuestCommand(["/bin/sh", "-c", "trap 'echo terminated; exit 42' TERM; echo ready; while true; do sleep 0.1; done"]), CancellationToken.None);
        var reader = new StreamReader(process.StandardOutput);
        Assert.Equal("ready", await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)));

        process.Signal(15);

        Assert.Equal(42, await process.Exited.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal("terminated", await reader.ReadLineAsync());
        var (code, _, _) = await RunAsync(new GuestCommand(["/no/such/program"]));
        Assert.NotEqual(0, code);
    }

    [Fact]
    public async Task Large_input_and_output_flow_through_whole()
    {
        var input = new byte[8 * 1024 * 1024];
        Random.Shared.NextBytes(input);

        await using var process = await Guest.StartAsync(new GuestCommand(["cat"]), CancellationToken.None);
        var output = new MemoryStream();
        var reading = process.StandardOutput.CopyToAsync(output);
        await process.StandardInput.WriteAsync(input);
        process.StandardInput.Close();
        await reading.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(0, await process.Exited.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(input)), Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(output.ToArray())));
    }

    [Fact]
    public async Task A_command_on_a_terminal_in_a_container_has_it_of_the_asked_size_and_follows_a_resize()
    {
        await using var process = await Guest.StartAsync(TerminalScript.Command, CancellationToken.None);

        await TerminalScript.AssertSizedThenResizedAsync(process);
    }

    private async Task<ContainerGuest> StartContainerAsync(IReadOnlyList<string> command)
    {
        var name = $"pmt-exec-{Guid.NewGuid():N}"[..24];
        var id = await Docker.CreateContainerAsync(new ContainerSpec(name, PodmanService.Image, command, new Dictionary<string, string>(), Small, Hostname: "exec-test",
            CgroupParent: _fixture.Podman.CgroupParent, GuestAgent: _withGuestAgent ? GuestAgent.Built() : null), CancellationToken.None);
        _containers.Add(id);
        await Docker.StartContainerAsync(id, CancellationToken.None);
        return new ContainerGuest(Docker, await Docker.InspectContainerAsync(id, CancellationToken.None) ?? throw new InvalidOperationException("the container is gone"));
    }

    private async Task<(int Code, string Output, string Errors)> RunAsync(GuestCommand command, string input = "")
    {
        await using var process = await Guest.StartAsync(command, CancellationToken.None);
        await process.StandardInput.WriteAsync(Encoding.UTF8.GetBytes(input));
        process.StandardInput.Close();
        var output = new StreamReader(process.StandardOutput).ReadToEndAsync();
        var errors = new StreamReader(process.StandardError).ReadToEndAsync();
        var code = await process.Exited.WaitAsync(TimeSpan.FromSeconds(30));
        return (code, await output, await errors);
    }
}

/// <summary>The same commands in containers without a guest agent (an older agent created them): the engine's exec API.</summary>
[Collection(PodmanCollection.Name)]
public sealed class ContainerEngineExecTests(PodmanFixture fixture) : ContainerExecTests(fixture, withGuestAgent: false);
