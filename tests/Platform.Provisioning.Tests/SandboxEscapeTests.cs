using System.Diagnostics;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Platform.Provisioning.Drivers.Networking;
using Platform.Provisioning.Drivers.Sandbox;
using Platform.Testing;

namespace Platform.Provisioning.Tests;

/// <summary>
/// Hostile tenant code in real sandboxes: each attempt to gain the host is made for real (the system call itself, from
/// python3's ctypes) and must be refused or contained, and the next sandbox must run as ever. See docs/security.md.
/// </summary>
public sealed partial class SandboxEscapeTests : IAsyncLifetime
{
    private static readonly SandboxLimits Limits = new(MemoryMiB: 128, MaxProcesses: 64, Cpus: 1);

    /// <summary>Calls a system call by number and prints its name and what came of it: "ok" or the errno's name.</summary>
    private const string Attempts = """
        import ctypes, errno, os, sys
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        def attempt(name, number, *args):
            ctypes.set_errno(0)
            result = libc.syscall(number, *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
            print(f"{name}: {'ok' if result >= 0 else errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno())}", flush=True)

        """;

    private readonly SandboxRunner _runner = new(Cgroups.Detect());
    private readonly List<string> _namespaces = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var name in _namespaces)
        {
            await NetworkNamespace.DeleteAsync(name);
        }
    }

    [Fact]
    public async Task Tenant_code_is_root_only_in_its_own_user_namespace_with_no_host_capabilities_no_new_privileges_and_a_seccomp_filter()
    {
        var marker = $"{Random.Shared.Next(1000, 9999)}.{Random.Shared.Next(1000, 9999)}";
        await using var sandbox = Start(["/bin/sh", "-c", $"id -u; exec sleep {marker}"]);
        var workload = await Eventually.ValueAsync(() => Task.FromResult(ProcessWithArgument(marker)), TimeSpan.FromSeconds(30), "the workload is running");

        var status = File.ReadAllLines($"/proc/{workload}/status").Select(l => l.Split(':', 2)).ToDictionary(p => p[0], p => p[1].Trim());
        var ids = sandbox.Ids!;
        Assert.Equal($"{ids.HostId}\t{ids.HostId}\t{ids.HostId}\t{ids.HostId}", status["Uid"]);
        Assert.Equal($"{ids.HostId}\t{ids.HostId}\t{ids.HostId}\t{ids.HostId}", status["Gid"]);
        Assert.Equal("1", status["NoNewPrivs"]);
        Assert.Equal("2", status["Seccomp"]);
        Assert.NotEqual(ReadLink("/proc/self/ns/user"), ReadLink($"/proc/{workload}/ns/user"));
        Assert.Equal(ids.MapLine.Split(' ', StringSplitOptions.RemoveEmptyEntries), File.ReadAllText($"/proc/{workload}/uid_map").Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries));
        // Its capabilities are the kept few, and they hold in its own user namespace only.
        var kept = SandboxRunner.KeptCapabilities.Select(CapabilityNumber).Aggregate(0UL, (mask, bit) => mask | (1UL << bit));
        Assert.Equal(kept, Convert.ToUInt64(status["CapEff"], 16));
        Assert.Equal(kept, Convert.ToUInt64(status["CapBnd"], 16));
        Assert.Equal(0UL, Convert.ToUInt64(status["CapAmb"], 16));
        Assert.Equal("0", sandbox.Output.Trim());
    }

    [Fact]
    public void The_seccomp_filter_compiles_to_whole_bpf_instructions_that_end_in_a_return()
    {
        var program = SeccompProfile.Program.ToArray();

        Assert.True(program.Length > 8 && program.Length % 8 == 0, $"{program.Length} bytes");
        // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }: BPF_RET | BPF_K is 0x06.
        Assert.Equal(0x06, BitConverter.ToUInt16(program, program.Length - 8));
    }

    [Fact]
    public async Task Two_live_sandboxes_never_share_host_ids_and_a_removed_one_gives_its_ids_back()
    {
        var first = Start(["/usr/bin/sleep", "60"]);
        await using var second = Start(["/usr/bin/sleep", "60"]);
        var firstIds = first.Ids!;

        Assert.NotEqual(firstIds.Slot, second.Ids!.Slot);
        Assert.True(Math.Abs(firstIds.HostId - second.Ids!.HostId) >= IdRanges.Size, "the ranges do not overlap");
        Assert.True(firstIds.HostId >= IdRanges.First, "no host account has these ids");

        await first.DisposeAsync();

        Assert.Null(first.Ids);
        Assert.False(File.Exists(Path.Combine(IdRanges.DefaultDirectory, firstIds.Slot.ToString(System.Globalization.CultureInfo.InvariantCulture))), "the lease is gone");
    }

    [Fact]
    public async Task Loading_a_kernel_module_and_the_kernels_other_privileged_interfaces_are_refused()
    {
        var results = await AttemptAsync("""
            fd = os.open("/dev/null", os.O_RDONLY)
            attempt("init_module", 175, b"\0" * 64, 64, b"")
            attempt("finit_module", 313, fd, b"", 0)
            attempt("delete_module", 176, b"ext4", 0)
            attempt("kexec_load", 246, 0, 0, 0, 0)
            attempt("bpf", 321, 0, 0, 0)
            attempt("perf_event_open", 298, 0, 0, -1, -1, 0)
            attempt("keyctl", 250, 0, 0, 0, 0, 0)
            attempt("add_key", 248, b"user", b"k", b"v", 1, -4)
            attempt("open_by_handle_at", 304, fd, 0, 0)
            attempt("io_uring_setup", 425, 8, 0)
            attempt("userfaultfd", 323, 0)
            attempt("reboot", 169, 0xfee1dead, 672274793, 0x4321fedc, 0)
            attempt("swapon", 167, b"/dev/null", 0)
            attempt("settimeofday", 164, 0, 0)
            attempt("clone3", 435, 0, 0)
            """);

        foreach (var call in new[] { "init_module", "finit_module", "delete_module", "kexec_load", "bpf", "perf_event_open", "keyctl", "add_key", "open_by_handle_at", "io_uring_setup", "userfaultfd", "reboot", "swapon", "settimeofday" })
        {
            Assert.Equal("EPERM", results[call]);
        }

        Assert.Equal("ENOSYS", results["clone3"]);
    }

    [Fact]
    public async Task Mounting_and_entering_or_making_namespaces_are_refused()
    {
        var results = await AttemptAsync("""
            attempt("mount", 165, b"none", b"/scratch", b"tmpfs", 0, 0)
            attempt("umount2", 166, b"/usr", 2)
            attempt("pivot_root", 155, b"/scratch", b"/scratch")
            attempt("unshare_mount", 272, 0x00020000)
            attempt("unshare_user", 272, 0x10000000)
            attempt("unshare_net", 272, 0x40000000)
            attempt("clone_user", 56, 0x10000000 | 17, 0, 0, 0, 0)
            attempt("setns", 308, os.open("/proc/self/ns/net", os.O_RDONLY), 0)
            attempt("fsopen", 430, b"tmpfs", 0)
            """);

        Assert.All(results.Values, result => Assert.Equal("EPERM", result));
        Assert.Equal(9, results.Count);
    }

    [Fact]
    public async Task Making_a_device_node_of_the_hosts_disk_is_refused_and_its_dev_holds_only_the_standard_devices()
    {
        var disk = File.ReadAllLines("/proc/partitions").Skip(2).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).First(p => p.Length == 4);
        var results = await AttemptAsync($$"""
            import stat
            try:
                os.mknod("/scratch/disk", 0o600 | stat.S_IFBLK, os.makedev({{disk[0]}}, {{disk[1]}}))
                print("mknod_block: ok")
                print("open_block: " + ("ok" if os.open("/scratch/disk", os.O_RDONLY) >= 0 else "no"))
            except OSError as e:
                print("mknod_block: " + errno.errorcode[e.errno])
            try:
                os.mknod("/scratch/mem", 0o600 | stat.S_IFCHR, os.makedev(1, 1))
                print("mknod_char: ok")
            except OSError as e:
                print("mknod_char: " + errno.errorcode[e.errno])
            print("dev: " + " ".join(sorted(n for n in os.listdir("/dev") if not os.path.islink("/dev/" + n) and n not in ("pts", "shm"))))
            with open("/dev/urandom", "rb") as f:
                print("urandom: " + str(len(f.read(16))))
            """);

        Assert.Equal("EPERM", results["mknod_block"]);
        Assert.False(results.ContainsKey("open_block"));
        Assert.Equal("EPERM", results["mknod_char"]);
        Assert.Equal("full null random tty urandom zero", results["dev"]);
        Assert.Equal("16", results["urandom"]);
    }

    [Fact]
    public async Task Ptrace_and_reading_another_processes_memory_are_refused_and_no_host_process_is_visible()
    {
        var results = await AttemptAsync($$"""
            attempt("ptrace_attach", 101, 16, 1, 0, 0)
            attempt("ptrace_traceme", 101, 0, 0, 0, 0)
            attempt("process_vm_readv", 310, 1, 0, 0, 0, 0, 0)
            attempt("kcmp", 312, 1, os.getpid(), 0, 0, 0)
            print("processes: " + str(len([p for p in os.listdir("/proc") if p.isdigit()])))
            print("agent_visible: " + str(os.path.exists("/proc/{{Environment.ProcessId}}/cmdline") and b"testhost" in open("/proc/{{Environment.ProcessId}}/cmdline", "rb").read()))
            """);

        Assert.Equal("EPERM", results["ptrace_attach"]);
        Assert.Equal("EPERM", results["ptrace_traceme"]);
        Assert.Equal("EPERM", results["process_vm_readv"]);
        Assert.Equal("EPERM", results["kcmp"]);
        Assert.True(int.Parse(results["processes"], System.Globalization.CultureInfo.InvariantCulture) <= 3, $"only its own processes: {results["processes"]}");
        Assert.Equal("False", results["agent_visible"]);
    }

    [Fact]
    public async Task Writing_proc_sys_or_sysrq_fails_and_leaves_the_host_as_it_was()
    {
        var corePattern = File.ReadAllText("/proc/sys/kernel/core_pattern");
        var hostname = File.ReadAllText("/proc/sys/kernel/hostname");

        var results = await AttemptAsync("""
            for name, path, value in [("core_pattern", "/proc/sys/kernel/core_pattern", "|/scratch/pwn"), ("hostname", "/proc/sys/kernel/hostname", "pwned"),
                                      ("drop_caches", "/proc/sys/vm/drop_caches", "3"), ("sysrq", "/proc/sysrq-trigger", "h"), ("kcore", "/proc/kcore", None)]:
                try:
                    if value is None:
                        print(name + ": " + str(len(open(path, "rb").read(4096))))
                    else:
                        with open(path, "w") as f:
                            f.write(value)
                        print(name + ": ok")
                except OSError as e:
                    print(name + ": " + errno.errorcode[e.errno])
            """);

        // Read-only, and the host's root owns them: either refusal will do.
        foreach (var name in new[] { "core_pattern", "hostname", "drop_caches" })
        {
            Assert.Contains(results[name], new[] { "EROFS", "EACCES" });
        }

        // A kernel without magic SysRq (as these build machines' is) has no such file.
        Assert.Contains(results["sysrq"], File.Exists("/proc/sysrq-trigger") ? new[] { "EROFS", "EACCES" } : ["ENOENT"]);

        Assert.Equal(File.Exists("/proc/kcore") ? "0" : "ENOENT", results["kcore"]);
        Assert.Equal(corePattern, File.ReadAllText("/proc/sys/kernel/core_pattern"));
        Assert.Equal(hostname, File.ReadAllText("/proc/sys/kernel/hostname"));
    }

    [Fact]
    public async Task Raising_a_hard_limit_or_the_priority_is_refused()
    {
        var results = await AttemptAsync("""
            import resource
            for name, limit in [("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC), ("memlock", resource.RLIMIT_MEMLOCK)]:
                soft, hard = resource.getrlimit(limit)
                if hard == resource.RLIM_INFINITY:
                    resource.setrlimit(limit, (soft, 1 << 20))
                    soft, hard = resource.getrlimit(limit)
                try:
                    resource.setrlimit(limit, (hard + 1, hard + 1))
                    print(name + ": ok")
                except ValueError:
                    print(name + ": EPERM")
            try:
                os.setpriority(os.PRIO_PROCESS, 0, -10)
                print("priority: ok")
            except OSError as e:
                print("priority: " + errno.errorcode[e.errno])
            """);

        Assert.Equal("EPERM", results["nofile"]);
        Assert.Equal("EPERM", results["nproc"]);
        Assert.Equal("EPERM", results["memlock"]);
        Assert.Equal("EACCES", results["priority"]);
    }

    [Fact]
    public async Task Filling_tmp_or_scratch_stops_at_its_size_and_the_sandbox_goes_on()
    {
        await using var sandbox = Start(["/bin/sh", "-c", """
            dd if=/dev/zero of=/tmp/fill bs=1M 2>/dev/null; echo "tmp: $(( $(stat -c %s /tmp/fill) / 1048576 ))"
            dd if=/dev/zero of=/scratch/fill bs=1M 2>/dev/null; echo "scratch: $(( $(stat -c %s /scratch/fill) / 1048576 ))"
            echo still-running
            """]);

        var exit = await sandbox.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.False(exit.OutOfMemory, "the sizes stop the writes before the memory limit does");
        Assert.Equal(["tmp: 32", "scratch: 64", "still-running"], exit.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(0, exit.ExitCode);
    }

    [Fact]
    public async Task After_a_fork_bomb_and_a_memory_bomb_the_host_and_the_next_sandbox_run_as_usual()
    {
        await using var forkBomb = Start(["/usr/bin/python3", "-c", "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)"]);
        await using var memoryBomb = Start(["/usr/bin/python3", "-c", "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))"]);
        var memoryExit = await memoryBomb.WaitAsync(TimeSpan.FromSeconds(60));
        await Eventually.TrueAsync(() => _runner.Cgroups.HitProcessLimit(forkBomb.Spec.Id), TimeSpan.FromSeconds(30), "the fork bomb reaches its process limit");

        Assert.True(memoryExit.OutOfMemory, "the memory bomb was killed at its limit");
        Assert.True(_runner.Cgroups.Usage(forkBomb.Spec.Id)!.Processes <= Limits.MaxProcesses, "the fork bomb is held at its limit");
        await using var next = Start(["/bin/sh", "-c", "echo fine"]);
        Assert.Equal("fine", (await next.WaitAsync(TimeSpan.FromSeconds(30))).Output.Trim());
        using var host = Process.Start(new ProcessStartInfo("/bin/true"))!;
        await host.WaitForExitAsync();
        Assert.Equal(0, host.ExitCode);
    }

    [Fact]
    public async Task The_hosts_services_database_and_broker_cannot_be_reached_from_a_tenant_network()
    {
        var run = Guid.NewGuid().ToString("N")[..6];
        var segment = await TenantSegment.EnsureAsync($"esc-seg-{run}", IPAddress.Parse("10.202.7.1"), 24);
        _namespaces.Add(segment.Namespace);
        var endpoint = $"esc-ep-{run}";
        _namespaces.Add(endpoint);
        await IpCommand.RunAsync("netns", "add", endpoint);
        await segment.PlugAsync(endpoint, IPAddress.Parse("10.202.7.2"), 24, IPAddress.Parse("10.202.7.1"));
        // A service of the host's that listens on every address, as a gateway in production does.
        using var service = new TcpListener(IPAddress.Any, 0);
        service.Start();
        var ports = new[] { ((IPEndPoint)service.LocalEndpoint).Port, PortOf(TestEnvironment.Postgres), new Uri(TestEnvironment.RabbitMq).Port, new Uri(TestEnvironment.RabbitMqManagement).Port };
        var addresses = HostAddresses().Append("10.202.7.1").Append("127.0.0.1").ToArray();
        var targets = string.Join(", ", addresses.SelectMany(a => ports.Select(p => $"(\"{a}\", {p})")));

        await using var sandbox = _runner.Start(new SandboxSpec(NewId(), ["/usr/bin/python3", "-c", $$"""
            import socket
            for target in [{{targets}}]:
                s = socket.socket()
                s.settimeout(1)
                try:
                    s.connect(target)
                    print(f"{target[0]}:{target[1]} connected")
                except OSError as e:
                    print(f"{target[0]}:{target[1]} {type(e).__name__}")
            """], Limits, "escape") { NetworkNamespace = endpoint });
        var exit = await sandbox.WaitAsync(TimeSpan.FromSeconds(120));

        Assert.Equal(0, exit.ExitCode);
        Assert.Equal(addresses.Length * ports.Length, exit.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.DoesNotContain("connected", exit.Output, StringComparison.Ordinal);
    }

    private SandboxProcess Start(IReadOnlyList<string> command) => _runner.Start(new SandboxSpec(NewId(), command, Limits, "escape"));

    /// <summary>Runs python with <see cref="Attempts"/> and <paramref name="script"/> in a sandbox; answers its "name: result" lines.</summary>
    private async Task<Dictionary<string, string>> AttemptAsync(string script)
    {
        await using var sandbox = Start(["/usr/bin/python3", "-c", Attempts + script]);
        var exit = await sandbox.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(exit.ExitCode == 0, $"the attempts ran to the end (exit {exit.ExitCode}): {exit.Errors}");
        return exit.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(": ", 2)).ToDictionary(p => p[0], p => p[1].Trim());
    }

    private static int? ProcessWithArgument(string argument) =>
        Directory.EnumerateDirectories("/proc").Select(Path.GetFileName).Where(n => n!.All(char.IsAsciiDigit)).Select(n => (int?)int.Parse(n!, System.Globalization.CultureInfo.InvariantCulture))
            .FirstOrDefault(pid =>
            {
                try
                {
                    return File.ReadAllText($"/proc/{pid}/cmdline").Split('\0').SequenceEqual(["sleep", argument, ""]);
                }
                catch (IOException)
                {
                    return false;
                }
            });

    private static string ReadLink(string path) => new FileInfo(path).LinkTarget!;

    private static int CapabilityNumber(string name) => name switch
    {
        "CAP_CHOWN" => 0, "CAP_DAC_OVERRIDE" => 1, "CAP_FOWNER" => 3, "CAP_FSETID" => 4, "CAP_KILL" => 5, "CAP_SETGID" => 6,
        "CAP_SETUID" => 7, "CAP_SETPCAP" => 8, "CAP_NET_BIND_SERVICE" => 10, "CAP_SYS_CHROOT" => 18, "CAP_AUDIT_WRITE" => 29, "CAP_SETFCAP" => 31,
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "not a kept capability"),
    };

    private static IEnumerable<string> HostAddresses() =>
        NetworkInterface.GetAllNetworkInterfaces().SelectMany(i => i.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address).Where(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a)).Select(a => a.ToString()).Distinct();

    private static int PortOf(string connectionString) => int.Parse(PortPattern().Match(connectionString).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);

    private static string NewId() => "escape-" + Guid.NewGuid().ToString("N")[..12];

    [GeneratedRegex("Port=([0-9]+)", RegexOptions.IgnoreCase)]
    private static partial Regex PortPattern();
}
