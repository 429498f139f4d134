using System.Security.Cryptography;
using System.Text;
using Platform.Provisioning.Drivers.Guests;
using Platform.Provisioning.Drivers.MicroVm;
using Platform.Testing;

namespace Platform.Provisioning.Tests;

/// <summary>Commands run in real micro-VMs through their guest agent, over the virtio-serial port only the host reaches.</summary>
public sealed partial class MicroVmTests
{
    [Fact]
    public async Task A_command_runs_in_a_cold_booted_micro_vm_through_its_guest_agent_with_its_input_output_and_exit_code()
    {
        await using var machine = await fixture.MachineAsync(subnet: 21);
        machine.Vm = await fixture.Runner.BootAsync(machine.Spec, Timeout());

        var (code, output, errors) = await RunAsync(machine.Vm, new GuestCommand(["/bin/sh", "-c", "read line; echo \"got $line in $(pwd) as $(id -u) on $(hostname)\"; echo oops >&2; exit 7"]), "hello\n");

        Assert.Equal((7, $"got hello in /scratch as 0 on {machine.Spec.Identity.Hostname}\n", "oops\n"), (code, output, errors));
        var named = await RunAsync(machine.Vm, new GuestCommand(["/bin/sh", "-c", "echo $GREETING; pwd; id -u; id -g"])
        {
            Environment = new Dictionary<string, string> { ["GREETING"] = "hi there" },
            WorkingDirectory = "/tmp",
            User = "1000:1001",
        });
        Assert.Equal((0, "hi there\n/tmp\n1000\n1001\n"), (named.Code, named.Output));
    }

    [Fact]
    public async Task A_micro_vm_restored_from_a_snapshot_runs_commands_and_carries_megabytes_both_ways_whole()
    {
        var snapshot = await fixture.SnapshotAsync();
        await using var machine = await fixture.MachineAsync(subnet: 22);
        await RestoreAsync(snapshot, machine);
        var input = RandomNumberGenerator.GetBytes(3 * 1024 * 1024);

        var hashed = await RunAsync(machine.Vm!, new GuestCommand(["/bin/sh", "-c", "sha256sum | cut -d' ' -f1"]), Convert.ToBase64String(input));
        var written = await RunAsync(machine.Vm!, new GuestCommand(["/bin/sh", "-c", "head -c 3145728 /dev/zero | tr '\\0' 'x'"]));

        Assert.Equal((0, Convert.ToHexStringLower(SHA256.HashData(Encoding.ASCII.GetBytes(Convert.ToBase64String(input)))) + "\n"), (hashed.Code, hashed.Output));
        Assert.Equal((0, 3 * 1024 * 1024), (written.Code, written.Output.Length));
        Assert.All(written.Output, c => Assert.Equal('x', c));
    }

    [Fact]
    public async Task A_signal_ends_a_micro_vm_command_and_what_cannot_run_says_why()
    {
        var snapshot = await fixture.SnapshotAsync();
        await using var machine = await fixture.MachineAsync(subnet: 23);
        await RestoreAsync(snapshot, machine);

        await using (var sleeper = await machine.Vm!.StartAsync(new GuestCommand(["/bin/sh", "-c", "echo started; exec sleep 600"]), Timeout()))
        {
            var reader = new StreamReader(sleeper.StandardOutput);
            Assert.Equal("started", await reader.ReadLineAsync(Timeout()));
            sleeper.Signal(15);
            Assert.Equal(128 + 15, await sleeper.Exited.WaitAsync(Timeout()));
        }

        var missing = await RunAsync(machine.Vm, new GuestCommand(["no-such-command"]));
        var nowhere = await RunAsync(machine.Vm, new GuestCommand(["true"]) { WorkingDirectory = "/no/such/place" });

        Assert.Equal(127, missing.Code);
        Assert.Contains("cannot run no-such-command", missing.Errors, StringComparison.Ordinal);
        Assert.Equal(1, nowhere.Code);
        Assert.Contains("/no/such/place", nowhere.Errors, StringComparison.Ordinal);
        await Assert.ThrowsAsync<GuestException>(() => machine.Vm.StartAsync(new GuestCommand(["true"]) { User = "postgres" }, Timeout()));
    }

    [Fact]
    public async Task A_micro_vms_logs_are_what_it_writes_to_its_serial_console_followed_as_it_writes()
    {
        var snapshot = await fixture.SnapshotAsync();
        await using var machine = await fixture.MachineAsync(subnet: 24);
        await RestoreAsync(snapshot, machine);
        await using var writer = await machine.Vm!.StartAsync(new GuestCommand(["/bin/sh", "-c", "i=1; while [ $i -le 100 ]; do echo console tick $i > /dev/console; i=$((i + 1)); sleep 0.1; done"]), Timeout());

        var seen = new StringBuilder();
        await foreach (var chunk in machine.Vm.ReadLogsAsync(new LogQuery(5, Follow: true), Timeout()))
        {
            Assert.Equal("console", chunk.Stream);
            seen.Append(Encoding.UTF8.GetString(chunk.Data.Span));
            if (seen.ToString().Contains("console tick 8\n", StringComparison.Ordinal))
            {
                break;
            }
        }

        Assert.Contains("console tick 7\n", seen.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_serial_log_written_past_a_mebibyte_is_emptied_and_goes_on_from_there()
    {
        var snapshot = await fixture.SnapshotAsync();
        await using var machine = await fixture.MachineAsync(subnet: 25);
        await RestoreAsync(snapshot, machine);

        var flood = await RunAsync(machine.Vm!, new GuestCommand(["/bin/sh", "-c", "head -c 1200000 /dev/zero | tr '\\0' x > /dev/console"]));
        await Eventually.TrueAsync(() => new FileInfo(machine.Vm!.SerialLogPath).Length < 1024 * 1024, TimeSpan.FromSeconds(10), "the serial log is emptied");
        await RunAsync(machine.Vm!, new GuestCommand(["/bin/sh", "-c", "echo after the flood > /dev/console"]));

        Assert.Equal(0, flood.Code);
        await Eventually.TrueAsync(() => File.ReadAllText(machine.Vm!.SerialLogPath).Contains("after the flood", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "the log goes on");
        Assert.True(new FileInfo(machine.Vm!.SerialLogPath).Length < 1024 * 1024);
    }

    [Fact]
    public async Task A_micro_vm_command_on_a_terminal_has_it_as_its_controlling_terminal_and_follows_a_resize()
    {
        var snapshot = await fixture.SnapshotAsync();
        await using var machine = await fixture.MachineAsync(subnet: 26);
        await RestoreAsync(snapshot, machine);
        await using var process = await machine.Vm!.StartAsync(TerminalScript.Command, Timeout());

        await TerminalScript.AssertSizedThenResizedAsync(process);
    }

    [Fact]
    public async Task A_micro_vms_serial_console_runs_a_shell_one_client_at_a_time()
    {
        var snapshot = await fixture.SnapshotAsync();
        await using var machine = await fixture.MachineAsync(subnet: 27);
        await RestoreAsync(snapshot, machine);

        await using (var console = await machine.Vm!.OpenConsoleAsync(Timeout()))
        {
            await Assert.ThrowsAsync<GuestException>(() => machine.Vm.OpenConsoleAsync(Timeout()));
            await console.WriteAsync("echo console says $((6 * 7))\n"u8.ToArray());
            await ReadUntilAsync(console, "console says 42");
        }

        await using var again = await machine.Vm.OpenConsoleAsync(Timeout());
        await again.WriteAsync("hostname\n"u8.ToArray());
        await ReadUntilAsync(again, machine.Spec.Identity.Hostname + "\r\n");
        Assert.Contains("console says 42\n", await LogsAsync(machine.Vm), StringComparison.Ordinal);

        static async Task ReadUntilAsync(Stream console, string expected)
        {
            var seen = new StringBuilder();
            var buffer = new byte[4096];
            while (!seen.ToString().Contains(expected, StringComparison.Ordinal))
            {
                var read = await console.ReadAsync(buffer, Timeout());
                Assert.True(read > 0, $"the console closed; it showed {seen}");
                seen.Append(Encoding.UTF8.GetString(buffer, 0, read));
            }
        }

        static async Task<string> LogsAsync(MicroVm vm)
        {
            var text = new StringBuilder();
            await foreach (var chunk in vm.ReadLogsAsync(new LogQuery(), Timeout()))
            {
                text.Append(Encoding.UTF8.GetString(chunk.Data.Span));
            }

            return text.ToString();
        }
    }

    private static async Task<(int Code, string Output, string Errors)> RunAsync(MicroVm vm, GuestCommand command, string input = "")
    {
        await using var process = await vm.StartAsync(command, Timeout());
        var output = new StreamReader(process.StandardOutput).ReadToEndAsync();
        var errors = new StreamReader(process.StandardError).ReadToEndAsync();
        await process.StandardInput.WriteAsync(Encoding.UTF8.GetBytes(input));
        process.StandardInput.Close();
        var code = await process.Exited.WaitAsync(Timeout());
        return (code, await output, await errors);
    }
}
