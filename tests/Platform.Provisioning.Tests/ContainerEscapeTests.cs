using Platform.Provisioning.Drivers.Container;
using Platform.Testing;

namespace Platform.Provisioning.Tests;

/// <summary>
/// Hostile tenant code in a real container (podman's Docker-compatible API, busybox): the engine's default capabilities
/// and seccomp profile, with no-new-privileges and limits added by the driver. Each attempt is made for real. See
/// docs/security.md.
/// </summary>
[Collection(PodmanCollection.Name)]
public sealed class ContainerEscapeTests(PodmanFixture fixture) : IAsyncLifetime
{
    private static readonly ContainerLimits Limits = new(64L * 1024 * 1024, 0.5, 32);

    /// <summary>Capabilities a container must never hold: SYS_MODULE, SYS_RAWIO, SYS_PTRACE, SYS_ADMIN, SYS_BOOT, SYS_TIME, NET_ADMIN, MAC_ADMIN, BPF, PERFMON.</summary>
    private static readonly int[] ForbiddenCapabilities = [16, 17, 19, 21, 22, 25, 12, 33, 39, 38];

    private readonly List<string> _created = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var id in _created)
        {
            await fixture.Docker.RemoveContainerAsync(id, CancellationToken.None);
        }
    }

    [Fact]
    public async Task Tenant_code_in_a_container_is_root_only_in_its_user_namespace_with_no_new_privileges_a_seccomp_filter_and_none_of_the_capabilities_that_reach_the_host()
    {
        var results = await RunAsync("""
            echo "nonewprivs: $(grep NoNewPrivs /proc/self/status | cut -f2)"
            echo "seccomp: $(grep '^Seccomp:' /proc/self/status | cut -f2)"
            echo "capeff: $(grep CapEff /proc/self/status | cut -f2)"
            echo "capbnd: $(grep CapBnd /proc/self/status | cut -f2)"
            echo "uid_map: $(cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //')"
            echo "uid: $(id -u)"
            """);

        // Root in the container, an unprivileged id of a range of its own on the host (podman's userns=auto).
        var map = results["uid_map"].Split(' ');
        Assert.Equal("0", results["uid"]);
        Assert.Equal("0", map[0]);
        Assert.True(long.Parse(map[1], System.Globalization.CultureInfo.InvariantCulture) >= 65536, $"root maps to host id {map[1]}");
        Assert.Equal("1", results["nonewprivs"]);
        Assert.Equal("2", results["seccomp"]);
        foreach (var set in new[] { "capeff", "capbnd" })
        {
            var mask = Convert.ToUInt64(results[set], 16);
            Assert.All(ForbiddenCapabilities, bit => Assert.True((mask & (1UL << bit)) == 0, $"{set} holds capability {bit}"));
        }
    }

    [Fact]
    public async Task Loading_a_module_mounting_opening_the_hosts_disk_writing_proc_sys_and_raising_limits_are_refused_in_a_container()
    {
        var disk = File.ReadAllLines("/proc/partitions").Skip(2).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).First(p => p.Length == 4);
        var corePattern = File.ReadAllText("/proc/sys/kernel/core_pattern");

        var results = await RunAsync($$"""
            insmod /dev/null 2>/dev/null && echo "insmod: ok" || echo "insmod: refused"
            mkdir -p /tmp/m; mount -t tmpfs none /tmp/m 2>/dev/null && echo "mount: ok" || echo "mount: refused"
            if mknod /tmp/disk b {{disk[0]}} {{disk[1]}} 2>/dev/null; then
              head -c 1 /tmp/disk >/dev/null 2>&1 && echo "disk: opened" || echo "disk: refused"
            else
              echo "disk: refused"
            fi
            (echo '|/tmp/pwn' > /proc/sys/kernel/core_pattern) 2>/dev/null && echo "proc_sys: ok" || echo "proc_sys: refused"
            ulimit -Hn $(( $(ulimit -Hn) + 1 )) 2>/dev/null && echo "limit: ok" || echo "limit: refused"
            """);

        Assert.Equal("refused", results["insmod"]);
        Assert.Equal("refused", results["mount"]);
        Assert.Equal("refused", results["disk"]);
        Assert.Equal("refused", results["proc_sys"]);
        Assert.Equal("refused", results["limit"]);
        Assert.Equal(corePattern, File.ReadAllText("/proc/sys/kernel/core_pattern"));
    }

    [Fact]
    public async Task A_fork_bomb_in_a_container_stops_at_its_process_limit_and_the_next_container_runs_as_usual()
    {
        // The shell that forks dies at the first refusal (busybox's sh exits when it cannot fork): a subshell, counting with
        // builtins only; the rest waits until forks work again (the sleeps end).
        var results = await RunAsync("""
            (n=0; for i in $(seq 1 100); do sleep 3 & n=$((n + 1)); echo $n > /tmp/forked; done) 2>/tmp/errors
            read -r forked < /tmp/forked; echo "forked: $forked"
            until (true) 2>/dev/null; do :; done
            grep -q -i "fork" /tmp/errors && echo "refused: yes" || echo "refused: no"
            """);

        Assert.Equal("yes", results["refused"]);
        Assert.True(int.Parse(results["forked"], System.Globalization.CultureInfo.InvariantCulture) < Limits.MaxProcesses, $"{results["forked"]} processes");
        Assert.Equal("fine", (await RunAsync("echo \"next: fine\""))["next"]);
    }

    [Fact]
    public async Task Filling_tmp_in_a_container_stops_at_a_quarter_of_its_memory_and_the_container_goes_on()
    {
        var results = await RunAsync("""
            err=$(dd if=/dev/zero of=/tmp/fill bs=1M count=1024 2>&1); echo "dd: $?"
            echo "$err" | grep -q -i "no space" && echo "nospace: yes" || echo "nospace: no"
            echo "filled: $(du -k /tmp/fill | cut -f1)"
            echo "tmp: $(grep ' /tmp ' /proc/mounts | cut -d' ' -f3)"
            echo "still: running"
            """);

        Assert.Equal("tmpfs", results["tmp"]);
        Assert.NotEqual("0", results["dd"]);
        Assert.Equal("yes", results["nospace"]);
        Assert.InRange(long.Parse(results["filled"], System.Globalization.CultureInfo.InvariantCulture) * 1024, 1, ContainerEngine.TmpSizeBytes(Limits));
        Assert.Equal("running", results["still"]);
    }

    [Fact]
    public async Task A_container_has_no_network_to_reach_the_hosts_services_from()
    {
        var results = await RunAsync("""
            echo "interfaces: $(ls /sys/class/net | tr '\n' ' ')"
            (nc -w 1 127.0.0.1 22 </dev/null >/dev/null 2>&1 || wget -q -T 1 -O /dev/null http://10.0.2.2/ 2>/dev/null) && echo "reached: yes" || echo "reached: no"
            """);

        Assert.Equal("lo", results["interfaces"]);
        Assert.Equal("no", results["reached"]);
    }

    /// <summary>Runs <paramref name="script"/> in a container as the driver creates them; answers its "name: result" lines.</summary>
    private async Task<Dictionary<string, string>> RunAsync(string script)
    {
        var docker = fixture.Docker;
        var name = "pmt-escape-" + Guid.NewGuid().ToString("N")[..12];
        var id = await docker.CreateContainerAsync(
            new ContainerSpec(name, PodmanService.Image, ["/bin/sh", "-c", script], new Dictionary<string, string>(), Limits, Hostname: name, CgroupParent: fixture.Podman.CgroupParent, UserNamespace: "auto"),
            CancellationToken.None);
        _created.Add(id);
        await docker.StartContainerAsync(id, CancellationToken.None);
        var exitCode = await docker.WaitContainerAsync(id, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        var logs = await docker.LogsAsync(id, null, CancellationToken.None);
        Assert.True(exitCode == 0, $"the script ran to the end (exit {exitCode}): {logs.Errors}");
        return logs.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(": ", 2)).ToDictionary(p => p[0], p => p[1].Trim());
    }
}
