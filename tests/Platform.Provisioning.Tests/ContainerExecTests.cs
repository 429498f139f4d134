using System.Text;
using Platform.Provisioning.Drivers.Container;
using Platform.Provisioning.Drivers.Guests;
using Platform.Testing;

namespace Platform.Provisioning.Tests;

/// <summary>Commands run in real, running containers through the engine's exec API (podman's Docker-compatible service).</summary>
[Collection(PodmanCollection.Name)]
public sealed class ContainerExecTests(PodmanFixture fixture) : IAsyncLifetime
{
    private static readonly ContainerLimits Small = new(64L * 1024 * 1024, 0.5, 32);
    private string _container = "";

    private ContainerEngine Docker => fixture.Docker;

    public async Task InitializeAsync()
    {
        var name = $"pmt-exec-{Guid.NewGuid():N}"[..24];
        _container = await Docker.CreateContainerAsync(new ContainerSpec(name, PodmanService.Image, ["sleep", "600"], new Dictionary<string, string>(), Small, Hostname: "exec-test", CgroupParent: fixture.Podman.CgroupParent), CancellationToken.None);
        await Docker.StartContainerAsync(_container, CancellationToken.None);
    }

    public async Task DisposeAsync() => await Docker.RemoveContainerAsync(_container, CancellationToken.None);

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
        await using var process = await Docker.ExecAsync(_container, new GuestCommand(["/bin/sh", "-c", "trap 'echo terminated; exit 42' TERM; echo ready; while true; do sleep 0.1; done"]), CancellationToken.None);
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

        await using var process = await Docker.ExecAsync(_container, new GuestCommand(["cat"]), CancellationToken.None);
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
        await using var process = await Docker.ExecAsync(_container, TerminalScript.Command, CancellationToken.None);

        await TerminalScript.AssertSizedThenResizedAsync(process);
    }

    private async Task<(int Code, string Output, string Errors)> RunAsync(GuestCommand command, string input = "")
    {
        await using var process = await Docker.ExecAsync(_container, command, CancellationToken.None);
        await process.StandardInput.WriteAsync(Encoding.UTF8.GetBytes(input));
        process.StandardInput.Close();
        var output = new StreamReader(process.StandardOutput).ReadToEndAsync();
        var errors = new StreamReader(process.StandardError).ReadToEndAsync();
        var code = await process.Exited.WaitAsync(TimeSpan.FromSeconds(30));
        return (code, await output, await errors);
    }
}
