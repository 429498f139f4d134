using System.Diagnostics;
using Platform.Provisioning.Drivers.Sandbox;
using Platform.Testing;

namespace Platform.Provisioning.Tests;

/// <summary>Real sandboxes: bubblewrap and the host's cgroups, as root.</summary>
public sealed class SandboxTests
{
    private static readonly SandboxLimits Small = new(MemoryMiB: 64, MaxProcesses: 32, Cpus: 0.5);
    private readonly SandboxRunner _runner = new(Cgroups.Detect());

    [Fact]
    public async Task A_sandbox_runs_its_command_with_its_own_hostname_and_output()
    {
        await using var sandbox = Start(["/bin/sh", "-c", "hostname; echo to-stderr >&2; exit 3"]);

        var exit = await sandbox.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(3, exit.ExitCode);
        Assert.Equal(sandbox.Spec.Hostname, exit.Output.Trim());
        Assert.Equal("to-stderr", exit.Errors.Trim());
        Assert.False(exit.OutOfMemory);
    }

    [Fact]
    public async Task Disposing_a_sandbox_a_second_time_changes_nothing()
    {
        var sandbox = Start(["/bin/sh", "-c", "sleep 30"]);
        await sandbox.DisposeAsync();

        // A stop and the end of its supervision may both dispose it (the agent's removal of every machine did).
        await sandbox.DisposeAsync();

        Assert.Null(sandbox.InsideProcessId);
    }

    [Fact]
    public async Task A_sandbox_cannot_see_the_hosts_processes_or_network()
    {
        using var marker = Process.Start("/usr/bin/sleep", "31.4159")!;
        try
        {
            await using var sandbox = Start(["/bin/sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo; echo INTER\"\"FACES; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"]);

            var exit = await sandbox.WaitAsync(TimeSpan.FromSeconds(30));

            Assert.Equal(0, exit.ExitCode);
            Assert.DoesNotContain("31.4159", exit.Output, StringComparison.Ordinal);
            Assert.Equal(["lo"], exit.Output.Split("INTERFACES")[1].Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
        finally
        {
            marker.Kill();
        }
    }

    [Fact]
    public async Task A_memory_hog_is_killed_at_the_memory_limit_and_a_modest_program_is_not()
    {
        await using var hog = Start(["/usr/bin/python3", "-c", "x = bytearray(256 * 1024 * 1024); print('allocated')"]);
        await using var modest = Start(["/usr/bin/python3", "-c", "x = bytearray(8 * 1024 * 1024); print('allocated')"]);

        var hogExit = await hog.WaitAsync(TimeSpan.FromSeconds(60));
        var modestExit = await modest.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.NotEqual(0, hogExit.ExitCode);
        Assert.DoesNotContain("allocated", hogExit.Output, StringComparison.Ordinal);
        Assert.True(hogExit.OutOfMemory, "the kernel killed it for its memory limit");
        Assert.Equal("allocated", modestExit.Output.Trim());
    }

    [Fact]
    public async Task A_fork_bomb_stops_at_the_process_limit()
    {
        // Memory to spare, so that only the process limit can stop it.
        await using var sandbox = Start(["/bin/sh", "-c", "for i in $(seq 1 200); do sleep 2 & done; wait"], Small with { MemoryMiB = 512, MaxProcesses = 16 });

        var exit = await sandbox.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.True(exit.ProcessLimitReached, $"the kernel refused forks past the limit (exit {exit.ExitCode}, output '{exit.Output}', errors '{exit.Errors}')");
        Assert.Contains("fork", exit.Errors, StringComparison.OrdinalIgnoreCase);
        Assert.False(exit.OutOfMemory);
    }

    [Fact]
    public async Task The_root_is_read_only_and_scratch_is_writable()
    {
        await using var sandbox = Start(["/bin/sh", "-c", "touch /usr/written 2>/dev/null && echo usr-writable; echo kept > /scratch/file && cat /scratch/file; pwd"]);

        var exit = await sandbox.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(["kept", "/scratch"], exit.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.False(File.Exists("/usr/written"));
    }

    [Fact]
    public async Task A_sandbox_with_a_disk_writes_its_scratch_to_it_past_its_memory_up_to_the_disks_size_and_leaves_no_mount_behind()
    {
        var id = NewId();
        // 40 MB would not fit in a 64 MiB sandbox's /scratch in memory (half its limit); 100 MB does not fit on its 64 MiB disk.
        var sandbox = _runner.Start(new SandboxSpec(id, ["/bin/sh", "-c",
            "df -m /scratch | tail -n 1 | awk '{print $2}'; head -c 40000000 /dev/zero > /scratch/fits && echo fits; "
            + "head -c 100000000 /dev/zero > /scratch/too-big 2>/dev/null || echo full; stat -c %u /scratch"], Small, "sbx-" + id[..8]) { DiskMiB = 64 });
        try
        {
            var exit = await sandbox.WaitAsync(TimeSpan.FromSeconds(60));

            var lines = exit.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(lines.Length == 4, exit.Output + exit.Errors);
            Assert.InRange(int.Parse(lines[0], System.Globalization.CultureInfo.InvariantCulture), 50, 64);
            Assert.Equal(["fits", "full", "0"], lines[1..]);
            Assert.False(exit.OutOfMemory);
        }
        finally
        {
            await sandbox.DisposeAsync();
        }

        Assert.DoesNotContain(id, File.ReadAllText("/proc/self/mountinfo"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_sandbox_on_an_images_root_has_its_variables_working_directory_and_kept_capabilities_only_and_none_of_the_hosts_usr()
    {
        await using var image = await TestImageTemplate.BuildAsync(Environment.GetEnvironmentVariable("PLATFORM_MICROVM_TEMPLATES")!);
        var template = Platform.Provisioning.Drivers.Templates.ImageTemplate.Load(image.Directory);
        var id = NewId();
        await using var sandbox = _runner.Start(new SandboxSpec(id, ["/bin/sh", "-c", "echo \"$GREETING in $(pwd)\"; test -e /usr && echo has-usr || echo no-usr; ls /app; echo x > /scratch/written && echo scratch-writable; cat /proc/self/status"], Small, "sbx-" + id[..8])
        {
            Root = template.RootfsPath,
            Environment = template.Environment,
            WorkingDirectory = template.WorkingDirectory,
        });

        var exit = await sandbox.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(exit.ExitCode == 0, exit.Output + exit.Errors);
        // Its bounding set is the kept capabilities only, as on the host's /usr (where setpriv narrows it).
        Assert.Equal(["hello in /app", "no-usr", "run", "scratch-writable"], exit.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries)[..4]);
        Assert.Contains("CapBnd:\t00000000a00405fb\n", exit.Output, StringComparison.Ordinal);
        Assert.Equal(["/app/run"], template.Command);
    }

    [Fact]
    public async Task Disposing_a_running_sandbox_leaves_no_process_and_no_cgroup()
    {
        var sandbox = Start(["/bin/sh", "-c", "sleep 60 & sleep 60"]);
        await Task.Delay(300);
        var pid = sandbox.ProcessId;

        await sandbox.DisposeAsync();

        Assert.False(_runner.Cgroups.Exists(sandbox.Spec.Id));
        Assert.Throws<ArgumentException>(() => Process.GetProcessById(pid));
    }

    [Fact]
    public async Task A_frozen_sandbox_uses_no_cpu_until_it_is_thawed_and_a_frozen_one_is_still_disposed_without_leftovers()
    {
        var sandbox = Start(["/bin/sh", "-c", "while :; do :; done"]);
        var id = sandbox.Spec.Id;
        await Eventually.TrueAsync(() => Task.FromResult(_runner.Cgroups.Usage(id)?.CpuNanoseconds > 50_000_000), TimeSpan.FromSeconds(10), "the loop uses CPU");

        await _runner.Cgroups.FreezeAsync(id, CancellationToken.None);
        var frozenAt = _runner.Cgroups.Usage(id)!.CpuNanoseconds;
        await Task.Delay(400);
        var whileFrozen = _runner.Cgroups.Usage(id)!.CpuNanoseconds;
        Assert.True(_runner.Cgroups.IsFrozen(id));
        _runner.Cgroups.Thaw(id);
        await Task.Delay(400);
        var afterThaw = _runner.Cgroups.Usage(id)!.CpuNanoseconds;
        Assert.False(_runner.Cgroups.IsFrozen(id));
        var pid = sandbox.ProcessId;
        await _runner.Cgroups.FreezeAsync(id, CancellationToken.None);
        await sandbox.DisposeAsync();

        Assert.Equal(frozenAt, whileFrozen);
        Assert.True(afterThaw > whileFrozen + 50_000_000, $"thawed, the loop runs again ({whileFrozen} → {afterThaw} ns)");
        Assert.False(_runner.Cgroups.Exists(id));
        Assert.Throws<ArgumentException>(() => Process.GetProcessById(pid));
    }

    [Fact]
    public void Nonsense_limits_and_ids_are_refused_before_anything_is_created()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _runner.Start(new SandboxSpec(NewId(), ["/bin/true"], Small with { MemoryMiB = -1 }, "x")));
        Assert.Throws<ArgumentOutOfRangeException>(() => _runner.Start(new SandboxSpec(NewId(), ["/bin/true"], Small with { MaxProcesses = 0 }, "x")));
        Assert.Throws<ArgumentException>(() => _runner.Start(new SandboxSpec("../escape", ["/bin/true"], Small, "x")));
        Assert.Throws<ArgumentException>(() => _runner.Start(new SandboxSpec(NewId(), [], Small, "x")));
    }

    private SandboxProcess Start(IReadOnlyList<string> command, SandboxLimits? limits = null)
    {
        var id = NewId();
        return _runner.Start(new SandboxSpec(id, command, limits ?? Small, "sbx-" + id[..8]));
    }

    private static string NewId() => "test-" + Guid.NewGuid().ToString("N")[..12];
}
