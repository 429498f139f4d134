using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Platform.Provisioning.Drivers.Sandbox;

/// <summary>
/// Starts sandboxes: bubblewrap in new pid, network, uts, ipc and mount namespaces, inside cgroups that
/// enforce the limits. The first process, a shell, joins the cgroups before it runs bubblewrap, so nothing the
/// sandbox starts can run outside them, not even for an instant; it stays to record how the command ended.
/// </summary>
/// <param name="runDirectory">Where each sandbox keeps its shell's pid, its output and its exit code (a folder each).</param>
/// <param name="idRanges">Where the host ids of sandboxes' user namespaces are leased (shared by every agent on the host).</param>
/// <param name="withGuestAgent">
/// Whether the guest agent (templates/guest-agent, built next to these drivers) becomes each sandbox's first process and
/// forks what is exec'd into it; without one, exec enters the sandbox through nsenter and a second bubblewrap.
/// </param>
public sealed partial class SandboxRunner(Cgroups cgroups, string? runDirectory = null, string bubblewrap = "/usr/bin/bwrap", IdRanges? idRanges = null, bool withGuestAgent = true)
{
    private const string SeccompFile = "seccomp.bpf";

    /// <summary>A sandbox's disk, and where it is mounted, in its run directory.</summary>
    private const string DiskFile = "disk.img";
    private const string DiskMount = "disk";

    /// <summary>Where a sandbox started from saved files sees their archive (read-only).</summary>
    private const string FilesInside = "/.platform/files.tar";


    /// <summary>
    /// The capabilities a sandbox's root keeps, in its own user namespace only (Docker's default set less MKNOD and
    /// NET_RAW): enough to own and chmod its files and to switch users; none of them reaches past the namespace.
    /// </summary>
    public static readonly IReadOnlyList<string> KeptCapabilities =
    [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
        "CAP_SETFCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_AUDIT_WRITE",
    ];

    /// <summary>What /proc shows of the host that a sandbox has no business reading: hidden behind an empty file or folder (bubblewrap itself makes /proc/sys, sysrq-trigger, irq and bus read-only).</summary>
    /// <remarks>Which of them this kernel has is read once: bubblewrap fails on a mount point that does not exist.</remarks>
    private static readonly string[] MaskedProc =
    [
        .. new[] { "kcore", "keys", "kallsyms", "timer_list", "timer_stats", "sched_debug", "latency_stats" }
            .Where(f => File.Exists($"/proc/{f}")).SelectMany(f => new[] { "--ro-bind", "/dev/null", $"/proc/{f}" }),
        .. new[] { "acpi", "scsi", "asound" }
            .Where(f => Directory.Exists($"/proc/{f}")).SelectMany(f => new[] { "--tmpfs", $"/proc/{f}", "--remount-ro", $"/proc/{f}" }),
    ];

    private readonly IdRanges _idRanges = idRanges ?? new IdRanges();

    private readonly string _runDirectory = runDirectory ?? Path.Combine(Path.GetTempPath(), "platform-sandboxes");

    private readonly string? _guestAgent = withGuestAgent ? Guests.GuestAgent.Built() : null;

    public Cgroups Cgroups => cgroups;

    /// <summary>
    /// The sandbox <paramref name="spec"/> describes, if a previous process of the agent started it and it still runs: its
    /// shell's pid is recorded, that process runs and is in the sandbox's cgroups. Null when it is not running.
    /// </summary>
    public SandboxProcess? Adopt(SandboxSpec spec)
    {
        var run = RunDirectoryOf(spec.Id);
        var pidFile = Path.Combine(run, SandboxProcess.PidFile);
        if (!cgroups.Exists(spec.Id) || !File.Exists(pidFile)
            || !int.TryParse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture, out var pid)
            || Processes.HostProcess.Find(pid) is not { } shell)
        {
            return null;
        }

        var memberOf = File.Exists($"/proc/{pid}/cgroup") ? File.ReadAllText($"/proc/{pid}/cgroup") : "";
        return memberOf.Contains($"/{Cgroups.Parent}/{spec.Id}", StringComparison.Ordinal)
            ? SandboxProcess.Adopted(spec, shell, cgroups, _idRanges, run)
            : null;
    }

    public SandboxProcess Start(SandboxSpec spec)
    {
        if (!SafeId().IsMatch(spec.Id))
        {
            throw new ArgumentException("A sandbox id is 1 to 64 letters, digits, '-' or '_'.", nameof(spec));
        }

        if (spec.Command.Count == 0)
        {
            throw new ArgumentException("A sandbox needs a command.", nameof(spec));
        }

        spec.Limits.Validate();
        if (spec.DiskMiB is not 0 and < Disks.DiskImage.MinSizeMiB)
        {
            throw new ArgumentException($"A sandbox's disk has at least {Disks.DiskImage.MinSizeMiB} MiB.", nameof(spec));
        }

        var run = RunDirectoryOf(spec.Id);
        RemoveRunDirectory(spec.Id);

        Directory.CreateDirectory(run);
        var procs = cgroups.Create(spec.Id, spec.Limits);
        try
        {
            var ids = _idRanges.Lease(run);
            File.WriteAllBytes(Path.Combine(run, SeccompFile), SeccompProfile.Program);
            if (spec.DiskMiB > 0)
            {
                // Its root directory belongs to the sandbox's root (the first id of its range).
                Disks.DiskImage.EnsureAsync(Path.Combine(run, DiskFile), spec.DiskMiB, ids.HostId).GetAwaiter().GetResult();
                Disks.DiskImage.MountAsync(Path.Combine(run, DiskFile), Path.Combine(run, DiskMount)).GetAwaiter().GetResult();
            }

            var start = new ProcessStartInfo("/bin/sh")
            {
                RedirectStandardInput = true,
                UseShellExecute = false,
            };
            // sh writes its own pid into every cgroup, then starts the sandbox: all descendants are inside. Its output goes
            // to files, never to the agent's pipes, so that it outlives the agent; the exit code is recorded for an agent
            // that adopts the sandbox after a restart and cannot wait for it. The sandbox starts in a user namespace of its
            // own (see InsideUserNamespace), onto which sh maps the sandbox's id range once it is there.
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add("""
                run=$PLATFORM_SANDBOX_RUN
                exec </dev/null >>"$run/shell" 2>&1
                for procs in $PLATFORM_CGROUP_PROCS; do echo $$ > "$procs" || exit 125; done
                echo $$ > "$run/pid"
                if [ -n "$PLATFORM_GUEST_AGENT" ]; then exec 7<"$PLATFORM_GUEST_AGENT" || exit 125; fi
                if [ -n "$PLATFORM_FILES" ]; then exec 6<"$PLATFORM_FILES" || exit 125; fi
                if [ -n "$PLATFORM_DISK" ]; then exec 5<"$PLATFORM_DISK" || exit 125; fi
                "$@" 9<"$run/seccomp.bpf" >>"$run/stdout" 2>>"$run/stderr" &
                inner=$!
                n=0
                while read -r line </proc/$inner/uid_map && [ -n "$line" ]; do n=$((n + 1)); [ $n -lt 500 ] || sleep 0.002; done
                if ! { echo "$PLATFORM_ID_MAP" >/proc/$inner/uid_map && echo "$PLATFORM_ID_MAP" >/proc/$inner/gid_map; }; then
                  kill -KILL $inner; wait $inner; exit 125
                fi
                wait $inner
                code=$?
                echo $code > "$run/exit.tmp" && mv "$run/exit.tmp" "$run/exit"
                exit $code
                """);
            start.ArgumentList.Add("sandbox");
            foreach (var argument in BubblewrapArguments(spec, ids))
            {
                start.ArgumentList.Add(argument);
            }

            start.Environment.Clear();
            start.Environment["PLATFORM_CGROUP_PROCS"] = string.Join(' ', procs);
            start.Environment["PLATFORM_SANDBOX_RUN"] = run;
            start.Environment["PLATFORM_ID_MAP"] = ids.MapLine;
            start.Environment["PATH"] = "/usr/local/bin:/usr/bin:/bin";
            if (_guestAgent is not null)
            {
                start.Environment["PLATFORM_GUEST_AGENT"] = _guestAgent;
            }

            if (spec.Files is not null)
            {
                start.Environment["PLATFORM_FILES"] = spec.Files;
            }

            if (spec.DiskMiB > 0)
            {
                start.Environment["PLATFORM_DISK"] = Path.Combine(run, DiskMount);
            }

            var shell = Process.Start(start)!;
            shell.StandardInput.Close();
            return SandboxProcess.Started(spec, shell, cgroups, _idRanges, run, withGuestAgent: _guestAgent is not null);
        }
        catch
        {
            cgroups.RemoveAsync(spec.Id).GetAwaiter().GetResult();
            _idRanges.Release(run);
            DeleteRunDirectory(run);
            throw;
        }
    }

    /// <summary>What a sandbox that nothing watched end left in its run directory (its output, its exit code).</summary>
    public void RemoveRunDirectory(string id)
    {
        if (Directory.Exists(RunDirectoryOf(id)))
        {
            _idRanges.Release(RunDirectoryOf(id));
            DeleteRunDirectory(RunDirectoryOf(id));
        }
    }

    /// <summary>Deletes a sandbox's run directory, its disk unmounted first (else the delete would empty the disk, then fail on its mount point).</summary>
    internal static void DeleteRunDirectory(string run)
    {
        Disks.DiskImage.UnmountAsync(Path.Combine(run, DiskMount)).GetAwaiter().GetResult();
        if (Directory.Exists(run))
        {
            Directory.Delete(run, recursive: true);
        }
    }

    private string RunDirectoryOf(string id) => Path.Combine(_runDirectory, id);

    /// <summary>
    /// How the sandbox's shell starts it: into its network (as host root, the only step that is), then as an unprivileged
    /// host user into a new user namespace, where it waits for its id map; then, as the namespace's root, bubblewrap,
    /// which sets no_new_privs, drops to the kept capabilities and loads the seccomp filter before the command.
    /// </summary>
    private IEnumerable<string> BubblewrapArguments(SandboxSpec spec, IdRange ids)
    {
        if (spec.NetworkNamespace is { } network)
        {
            if (!SafeId().IsMatch(network))
            {
                throw new ArgumentException("A network namespace name is 1 to 64 letters, digits, '-' or '_'.", nameof(spec));
            }

            yield return "nsenter";
            yield return $"--net=/run/netns/{network}";
        }

        foreach (var argument in InsideUserNamespace(ids))
        {
            yield return argument;
        }

        yield return bubblewrap;
        if (spec.NetworkNamespace is null)
        {
            yield return "--unshare-net";
        }

        var memory = (long)spec.Limits.MemoryMiB * 1024 * 1024;
        foreach (var argument in new[]
        {
            // No --die-with-parent: it ties the sandbox to the *thread* that started it (PR_SET_PDEATHSIG), and .NET
            // starts processes from pool threads that come and go, so sandboxes died at random under load. A sandbox
            // lives until it is disposed; its cgroups are how everything in it is found and killed.
            "--unshare-pid", "--unshare-uts", "--unshare-ipc", "--unshare-cgroup-try", "--new-session",
        })
        {
            yield return argument;
        }

        // The host's /usr, or an image's root.
        string[] root = spec.Root is { } image
            ? ["--ro-bind", image, "/"]
            : [
                "--ro-bind", "/usr", "/usr",
                "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                "--ro-bind-try", "/etc/alternatives", "/etc/alternatives",
            ];
        foreach (var argument in (string[])[
            .. root,
            "--proc", "/proc", "--dev", "/dev",
            // In memory, so charged to the memory limit; sized so that filling them fails with ENOSPC before the limit kills.
            "--size", (memory / 4).ToString(System.Globalization.CultureInfo.InvariantCulture), "--tmpfs", "/tmp",
        ])
        {
            yield return argument;
        }

        // On its disk (the shell opens its mount as descriptor 5), or in memory.
        string[] scratch = spec.DiskMiB > 0
            ? ["--bind-fd", "5", "/scratch"]
            : ["--size", (memory / 2).ToString(System.Globalization.CultureInfo.InvariantCulture), "--tmpfs", "/scratch"];
        foreach (var argument in (string[])[
            .. scratch,
            "--chdir", spec.WorkingDirectory ?? "/scratch",
            "--hostname", spec.Hostname, "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/scratch",
        ])
        {
            yield return argument;
        }

        foreach (var argument in MaskedProc)
        {
            yield return argument;
        }

        // The shell opens the guest agent as descriptor 7; it runs the command and listens for exec.
        var command = spec.Command;
        if (_guestAgent is not null)
        {
            yield return "--ro-bind-fd";
            yield return "7";
            yield return Guests.GuestAgent.Inside;
            command = [Guests.GuestAgent.Inside, "--socket", Guests.GuestAgent.SocketName(spec.Id), "--", .. spec.Command];
        }

        // Unpacked inside, as the sandbox's root and under its confinement, before anything of the tenant's runs (the agent
        // included, so that nothing exec'd sees /scratch half made).
        // The shell opens the archive as descriptor 6: the sandbox's user may not reach the host's path to it.
        if (spec.Files is not null)
        {
            yield return "--ro-bind-fd";
            yield return "6";
            yield return FilesInside;
            command = ["/bin/sh", "-c", $"tar --numeric-owner -xf {FilesInside} -C /scratch || exit 125; exec \"$@\"", "unpack", .. command];
        }

        // An image's root has no setpriv: the guest agent (static, bound in) narrows the capabilities in its place.
        if (spec.Root is not null && _guestAgent is null)
        {
            throw new ArgumentException("A sandbox on an image's root needs the guest agent.", nameof(spec));
        }

        foreach (var argument in Confined(spec.Environment, command, (0, 0), narrowedBy: spec.Root is null ? null : Guests.GuestAgent.Inside))
        {
            yield return argument;
        }
    }

    /// <summary>The numbers of <see cref="KeptCapabilities"/> (linux/capability.h), as the guest agent's --keep-capabilities takes them.</summary>
    private static readonly string KeptCapabilityNumbers = string.Join(',', KeptCapabilities.Select(c => c switch
    {
        "CAP_CHOWN" => 0, "CAP_DAC_OVERRIDE" => 1, "CAP_FOWNER" => 3, "CAP_FSETID" => 4, "CAP_KILL" => 5, "CAP_SETGID" => 6,
        "CAP_SETUID" => 7, "CAP_SETPCAP" => 8, "CAP_NET_BIND_SERVICE" => 10, "CAP_SYS_CHROOT" => 18, "CAP_AUDIT_WRITE" => 29,
        "CAP_SETFCAP" => 31, _ => throw new InvalidOperationException($"no number known for {c}"),
    }));

    /// <summary>
    /// Bubblewrap's last arguments for any process of a sandbox (its command, or one exec'd into it): only the kept
    /// capabilities, the variables it adds, the seccomp filter (descriptor 9), then <paramref name="command"/> under setpriv
    /// as <paramref name="user"/>; or, where the root has no setpriv, under <paramref name="narrowedBy"/> (the guest agent's
    /// --keep-capabilities, which does the same for root).
    /// </summary>
    private static IEnumerable<string> Confined(IReadOnlyDictionary<string, string> environment, IReadOnlyList<string> command, (int Uid, int Gid) user, string? narrowedBy = null)
    {
        if (narrowedBy is not null && user != (0, 0))
        {
            throw new ArgumentException("Only the sandbox's root runs under the guest agent's narrowing.", nameof(user));
        }

        yield return "--cap-drop";
        yield return "ALL";
        foreach (var capability in KeptCapabilities)
        {
            yield return "--cap-add";
            yield return capability;
        }

        foreach (var (name, value) in environment)
        {
            yield return "--setenv";
            yield return name;
            yield return value;
        }

        // The shell opens the compiled filter as descriptor 9 (dash has no redirection above 9); bubblewrap loads it last, just before the command.
        yield return "--seccomp";
        yield return "9";
        yield return "--";
        // bubblewrap, not setuid, leaves the bounding set full (and the kept capabilities ambient), so that the command,
        // as root, would have every capability of its namespace back: setpriv narrows the bounding set to the kept ones
        // and clears the inheritable and ambient sets, so that the sandbox's other users have none, as in Docker.
        if (narrowedBy is not null)
        {
            yield return narrowedBy;
            yield return "--keep-capabilities";
            yield return KeptCapabilityNumbers;
            yield return "--";
            foreach (var part in command)
            {
                yield return part;
            }

            yield break;
        }

        yield return "setpriv";
        yield return "--bounding-set=-all," + string.Join(',', KeptCapabilities.Select(c => "+" + c["CAP_".Length..].ToLowerInvariant()));
        yield return "--inh-caps=-all";
        yield return "--ambient-caps=-all";
        if (user != (0, 0))
        {
            yield return $"--reuid={user.Uid.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
            yield return $"--regid={user.Gid.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
            yield return "--clear-groups";
        }

        yield return "--";
        foreach (var part in command)
        {
            yield return part;
        }
    }

    /// <summary>
    /// As the first host id of the sandbox's range (an unprivileged user, with no capability on the host), a new user
    /// namespace; its process waits (a few hundred reads, then at most 10 s) until the shell outside has mapped the range onto it, which makes
    /// that id the namespace's root, and then runs what follows with the namespace's capabilities only.
    /// </summary>
    private static IEnumerable<string> InsideUserNamespace(IdRange ids) =>
    [
        "setpriv", $"--reuid={ids.HostId}", $"--regid={ids.HostId}", "--clear-groups", "--",
        "unshare", "--user", "--", "/bin/sh", "-c",
        """
        n=0
        until read -r line </proc/self/gid_map && [ -n "$line" ]; do
          n=$((n + 1)); [ $n -lt 5500 ] || { echo "sandbox: no id map within 10 s" >&2; exit 125; }
          [ $n -lt 500 ] || sleep 0.002
        done
        exec "$@"
        """,
        "sandbox-user",
    ];

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex SafeId();
}
