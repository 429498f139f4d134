using System.Text;
using Platform.Provisioning.Drivers.Guests;
using Platform.Provisioning.Drivers.Sandbox;
using Platform.Testing;

namespace Platform.Provisioning.Tests;

/// <summary>Commands run inside real, running sandboxes, forked by their guest agent: confined as the sandbox's own processes are.</summary>
public class SandboxExecTests
{
    private static readonly SandboxLimits Limits = new(MemoryMiB: 96, MaxProcesses: 32, Cpus: 1);
    private readonly SandboxRunner _runner;
    private readonly bool _withGuestAgent;

    public SandboxExecTests()
        : this(withGuestAgent: true)
    {
    }

    protected SandboxExecTests(bool withGuestAgent)
    {
        _withGuestAgent = withGuestAgent;
        _runner = new SandboxRunner(Cgroups.Detect(), withGuestAgent: withGuestAgent);
    }

    [Fact]
    public async Task A_command_is_forked_inside_the_sandbox_by_its_guest_agent_or_entered_from_outside_without_one()
    {
        await using var sandbox = await StartIdleAsync();

        var (code, output, _) = await RunAsync(sandbox, new GuestCommand(["/bin/sh", "-c", "echo $PPID; tr '\\0' ' ' </proc/$PPID/cmdline"]));

        Assert.Equal(0, code);
        // The agent is the sandbox's pid 2 (bubblewrap's init is 1); from outside, the parent is the bubblewrap that confined it.
        Assert.StartsWith(_withGuestAgent ? $"2\n{Platform.Provisioning.Drivers.Guests.GuestAgent.Inside} --socket " : "", output, StringComparison.Ordinal);
        Assert.Equal(!_withGuestAgent, output.Contains("\n/usr/bin/bwrap --bind / / ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_adopted_sandbox_is_entered_the_way_it_was_started()
    {
        await using var sandbox = await StartIdleAsync();
        // Disposed first, it ends the sandbox; the original's disposal then finds it gone.
        await using var adopted = new SandboxRunner(Cgroups.Detect(), withGuestAgent: _withGuestAgent).Adopt(sandbox.Spec) ?? throw new InvalidOperationException("the sandbox is not adopted");

        var (code, output, _) = await RunAsync(adopted, new GuestCommand(["/bin/sh", "-c", "tr '\\0' ' ' </proc/$PPID/cmdline"]));

        Assert.Equal(0, code);
        Assert.StartsWith(_withGuestAgent ? Platform.Provisioning.Drivers.Guests.GuestAgent.Inside : "/usr/bin/bwrap --bind / / ", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_command_runs_inside_the_sandbox_and_its_output_input_and_exit_code_come_back()
    {
        await using var sandbox = await StartIdleAsync();

        var (code, output, errors) = await RunAsync(sandbox, new GuestCommand(["/bin/sh", "-c", "read line; echo \"got $line in $(pwd) as $(id -u) on $(hostname)\"; echo oops >&2; exit 7"]), "hello\n");

        Assert.Equal(7, code);
        Assert.Equal($"got hello in /scratch as 0 on {sandbox.Spec.Hostname}\n", output);
        Assert.Equal("oops\n", errors);
    }

    [Fact]
    public async Task A_command_sees_the_sandboxs_files_and_processes_and_its_own_environment_directory_and_user()
    {
        await using var sandbox = await StartIdleAsync(["/bin/sh", "-c", "echo kept > /scratch/from-main; exec sleep 600"]);
        await Eventually.TrueAsync(async () => (await RunAsync(sandbox, new GuestCommand(["cat", "/scratch/from-main"]))).Output == "kept\n", TimeSpan.FromSeconds(10), "the main process wrote its file");

        var (code, output, _) = await RunAsync(sandbox, new GuestCommand(["/bin/sh", "-c", "echo $GREETING; pwd; id -u; id -g; ps -e -o comm= | sort | tr '\\n' ' '"])
        {
            Environment = new Dictionary<string, string> { ["GREETING"] = "hi there" },
            WorkingDirectory = "/tmp",
            User = "1000:1001",
        });

        Assert.Equal(0, code);
        var lines = output.Split('\n');
        Assert.Equal(["hi there", "/tmp", "1000", "1001"], lines[..4]);
        Assert.Contains("sleep", lines[4], StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_execd_process_is_confined_like_the_sandbox_its_cgroups_user_namespace_capabilities_and_seccomp_filter()
    {
        await using var sandbox = await StartIdleAsync();
        var marker = $"{Random.Shared.Next(1000, 9999)}.{Random.Shared.Next(1000, 9999)}";
        await using var process = await _runner.ExecAsync(sandbox, new GuestCommand(["sleep", marker]), CancellationToken.None);
        var pid = await Eventually.ValueAsync(() => Task.FromResult(ProcessWithArgument(marker)), TimeSpan.FromSeconds(10), "the exec'd process runs");

        var status = File.ReadAllLines($"/proc/{pid}/status").Select(l => l.Split(':', 2)).ToDictionary(p => p[0], p => p[1].Trim());
        var ids = sandbox.Ids!;
        Assert.Equal($"{ids.HostId}\t{ids.HostId}\t{ids.HostId}\t{ids.HostId}", status["Uid"]);
        Assert.Equal("1", status["NoNewPrivs"]);
        Assert.Equal("2", status["Seccomp"]);
        Assert.Equal(0UL, Convert.ToUInt64(status["CapAmb"], 16));
        Assert.Equal(0UL, Convert.ToUInt64(status["CapInh"], 16));
        // The same bounding set as the sandbox's own command (bubblewrap's child runs it).
        var main = File.ReadAllText($"/proc/{sandbox.InsideProcessId}/task/{sandbox.InsideProcessId}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries)[0];
        Assert.Equal(File.ReadAllLines($"/proc/{main}/status").Single(l => l.StartsWith("CapBnd:", StringComparison.Ordinal)), "CapBnd:\t" + status["CapBnd"]);
        Assert.Equal(status["CapBnd"], status["CapEff"]);
        Assert.Equal(ReadLink($"/proc/{sandbox.InsideProcessId}/ns/user"), ReadLink($"/proc/{pid}/ns/user"));
        Assert.Equal(ReadLink($"/proc/{sandbox.InsideProcessId}/ns/pid"), ReadLink($"/proc/{pid}/ns/pid"));
        Assert.Equal(ReadLink($"/proc/{sandbox.InsideProcessId}/ns/net"), ReadLink($"/proc/{pid}/ns/net"));
        Assert.Contains($"/{Cgroups.Parent}/{sandbox.Spec.Id}", File.ReadAllText($"/proc/{pid}/cgroup"), StringComparison.Ordinal);
        // The filter holds: no new namespace from inside.
        var (code, _, errors) = await RunAsync(sandbox, new GuestCommand(["unshare", "--user", "true"]));
        Assert.NotEqual(0, code);
        Assert.Contains("Operation not permitted", errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_signal_reaches_the_command_and_its_exit_code_says_so()
    {
        await using var sandbox = await StartIdleAsync();
        await using var process = await _runner.ExecAsync(sandbox, new GuestCommand(["/bin/sh", "-c", "trap 'echo terminated; exit 42' TERM; echo ready; while true; do sleep 0.1; done"]), CancellationToken.None);
        var reader = new StreamReader(process.StandardOutput);
        Assert.Equal("ready", await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)));

        process.Signal(15);

        Assert.Equal(42, await process.Exited.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal("terminated", await reader.ReadLineAsync());
    }

    [Fact]
    public async Task A_command_that_is_not_there_or_a_bad_user_is_refused_clearly()
    {
        await using var sandbox = await StartIdleAsync();

        var (code, _, errors) = await RunAsync(sandbox, new GuestCommand(["/no/such/program"]));
        Assert.Equal(127, code);
        Assert.Contains("/no/such/program", errors, StringComparison.Ordinal);
        await Assert.ThrowsAsync<GuestException>(() => _runner.ExecAsync(sandbox, new GuestCommand(["true"]) { User = "postgres" }, CancellationToken.None));
        await Assert.ThrowsAsync<GuestException>(() => _runner.ExecAsync(sandbox, new GuestCommand(["true"]) { User = "70000" }, CancellationToken.None));
        await Assert.ThrowsAsync<GuestException>(() => _runner.ExecAsync(sandbox, new GuestCommand([]), CancellationToken.None));
        await Assert.ThrowsAsync<GuestException>(() => _runner.ExecAsync(sandbox, new GuestCommand(["true"]) { Environment = new Dictionary<string, string> { ["A=B"] = "x" } }, CancellationToken.None));
    }

    [Fact]
    public async Task A_command_started_as_soon_as_a_sandbox_is_set_up_runs_in_its_finished_root()
    {
        for (var attempt = 0; attempt < 8; attempt++)
        {
            var id = "test-" + Guid.NewGuid().ToString("N")[..12];
            await using var sandbox = _runner.Start(new SandboxSpec(id, ["sleep", "600"], Limits, "exec-" + id[5..13]));
            Assert.True(await sandbox.WaitUntilSetUpAsync(TimeSpan.FromSeconds(10), CancellationToken.None), "the sandbox is set up");

            var (code, output, errors) = await RunAsync(sandbox, new GuestCommand(["/bin/sh", "-c", "test -x /usr/bin/bwrap && hostname"]));

            Assert.Equal((0, sandbox.Spec.Hostname + "\n", ""), (code, output, errors));
        }
    }

    [Fact]
    public async Task A_command_on_a_terminal_has_it_as_its_controlling_terminal_of_the_asked_size_and_follows_a_resize()
    {
        await using var sandbox = await StartIdleAsync();
        await using var process = await _runner.ExecAsync(sandbox, TerminalScript.Command, CancellationToken.None);

        await TerminalScript.AssertSizedThenResizedAsync(process);
    }

    [Fact]
    public async Task A_frozen_sandboxs_files_are_saved_with_their_owners_and_a_sandbox_started_from_them_has_them_before_its_command_runs()
    {
        var archive = Path.Combine(Path.GetTempPath(), "sandbox-files-" + Guid.NewGuid().ToString("N")[..8] + ".tar");
        try
        {
            await using var source = await StartIdleAsync();
            var written = await RunAsync(source, new GuestCommand(["/bin/sh", "-c", "mkdir -p deep/er && echo kept > deep/er/file && chown 1000:1001 deep/er/file && chmod 640 deep/er/file && ln -s /etc/shadow link"]));
            Assert.Equal(0, written.Code);
            await _runner.Cgroups.FreezeAsync(source.Spec.Id, CancellationToken.None);

            var size = await _runner.SaveFilesAsync(source, archive, CancellationToken.None);
            var stillFrozen = _runner.Cgroups.IsFrozen(source.Spec.Id);
            _runner.Cgroups.Thaw(source.Spec.Id);

            var id = "test-" + Guid.NewGuid().ToString("N")[..12];
            await using var copy = _runner.Start(new SandboxSpec(id, ["/bin/sh", "-c", "cat deep/er/file > seen-first; exec sleep 600"], Limits, "copy-" + id[5..13]) { Files = archive });
            Assert.True(await copy.WaitUntilSetUpAsync(TimeSpan.FromSeconds(10), CancellationToken.None), "the sandbox is set up");
            await Eventually.TrueAsync(async () => (await RunAsync(copy, new GuestCommand(["cat", "seen-first"]))).Output == "kept\n", TimeSpan.FromSeconds(10), "its command saw the file");
            var seen = await RunAsync(copy, new GuestCommand(["/bin/sh", "-c", "stat -c '%u:%g %a' deep/er/file; readlink link"]));

            Assert.True(stillFrozen, "saving its files left the sandbox frozen");
            Assert.Equal(new FileInfo(archive).Length, size);
            Assert.Equal((0, "1000:1001 640\n/etc/shadow\n"), (seen.Code, seen.Output));
        }
        finally
        {
            File.Delete(archive);
        }
    }

    private async Task<(int Code, string Output, string Errors)> RunAsync(SandboxProcess sandbox, GuestCommand command, string input = "")
    {
        await using var process = await _runner.ExecAsync(sandbox, command, CancellationToken.None);
        await process.StandardInput.WriteAsync(Encoding.UTF8.GetBytes(input));
        process.StandardInput.Close();
        var output = new StreamReader(process.StandardOutput).ReadToEndAsync();
        var errors = new StreamReader(process.StandardError).ReadToEndAsync();
        var code = await process.Exited.WaitAsync(TimeSpan.FromSeconds(30));
        return (code, await output, await errors);
    }

    private async Task<SandboxProcess> StartIdleAsync(IReadOnlyList<string>? command = null)
    {
        var id = "test-" + Guid.NewGuid().ToString("N")[..12];
        var sandbox = _runner.Start(new SandboxSpec(id, command ?? ["sleep", "600"], Limits, "exec-" + id[5..13]));
        Assert.True(await sandbox.WaitUntilSetUpAsync(TimeSpan.FromSeconds(10), CancellationToken.None), "the sandbox is set up");
        return sandbox;
    }

    private static int? ProcessWithArgument(string argument) =>
        Directory.EnumerateDirectories("/proc").Select(Path.GetFileName).Where(n => n!.All(char.IsAsciiDigit)).Select(int.Parse!)
            .FirstOrDefault(pid => ReadOrEmpty($"/proc/{pid}/cmdline").Split('\0') is ["sleep", var first, ..] && first == argument) is var found and not 0 ? found : null;

    private static string ReadOrEmpty(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static string ReadLink(string path) => new FileInfo(path).LinkTarget ?? "";
}

/// <summary>The same commands in sandboxes without a guest agent (an older agent started them): entered through nsenter and a second bubblewrap.</summary>
public sealed class SandboxExecWithoutGuestAgentTests() : SandboxExecTests(withGuestAgent: false);
