using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Platform.Provisioning.Drivers.Sandbox;

/// <summary>
/// Starts sandboxes: bubblewrap in new pid, network, uts, ipc and mount namespaces, inside cgroups that
/// enforce the limits. The first process, a shell, joins the cgroups before it runs bubblewrap, so nothing the
/// sandbox starts can run outside them, not even for an instant; it stays to record how the command ended.
/// </summary>
/// <param name="runDirectory">Where each sandbox keeps its shell's pid, its output and its exit code (a folder each).</param>
public sealed partial class SandboxRunner(Cgroups cgroups, string? runDirectory = null, string bubblewrap = "/usr/bin/bwrap")
{
    private readonly string _runDirectory = runDirectory ?? Path.Combine(Path.GetTempPath(), "platform-sandboxes");

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
            ? SandboxProcess.Adopted(spec, shell, cgroups, run)
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
        var run = RunDirectoryOf(spec.Id);
        if (Directory.Exists(run))
        {
            Directory.Delete(run, recursive: true);
        }

        Directory.CreateDirectory(run);
        var procs = cgroups.Create(spec.Id, spec.Limits);
        try
        {
            var start = new ProcessStartInfo("/bin/sh")
            {
                RedirectStandardInput = true,
                UseShellExecute = false,
            };
            // sh writes its own pid into every cgroup, then runs bubblewrap: all descendants are inside. Its output goes to
            // files, never to the agent's pipes, so that it outlives the agent; the exit code is recorded for an agent that
            // adopts the sandbox after a restart and cannot wait for it.
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add("""
                run=$PLATFORM_SANDBOX_RUN
                exec </dev/null >>"$run/shell" 2>&1
                for procs in $PLATFORM_CGROUP_PROCS; do echo $$ > "$procs" || exit 125; done
                echo $$ > "$run/pid"
                "$@" >>"$run/stdout" 2>>"$run/stderr"
                code=$?
                echo $code > "$run/exit.tmp" && mv "$run/exit.tmp" "$run/exit"
                exit $code
                """);
            start.ArgumentList.Add("sandbox");
            foreach (var argument in BubblewrapArguments(spec))
            {
                start.ArgumentList.Add(argument);
            }

            start.Environment.Clear();
            start.Environment["PLATFORM_CGROUP_PROCS"] = string.Join(' ', procs);
            start.Environment["PLATFORM_SANDBOX_RUN"] = run;
            start.Environment["PATH"] = "/usr/local/bin:/usr/bin:/bin";
            var shell = Process.Start(start)!;
            shell.StandardInput.Close();
            return SandboxProcess.Started(spec, shell, cgroups, run);
        }
        catch
        {
            cgroups.RemoveAsync(spec.Id).GetAwaiter().GetResult();
            Directory.Delete(run, recursive: true);
            throw;
        }
    }

    /// <summary>What a sandbox that nothing watched end left in its run directory (its output, its exit code).</summary>
    public void RemoveRunDirectory(string id)
    {
        if (Directory.Exists(RunDirectoryOf(id)))
        {
            Directory.Delete(RunDirectoryOf(id), recursive: true);
        }
    }

    private string RunDirectoryOf(string id) => Path.Combine(_runDirectory, id);

    private IEnumerable<string> BubblewrapArguments(SandboxSpec spec)
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

        yield return bubblewrap;
        if (spec.NetworkNamespace is null)
        {
            yield return "--unshare-net";
        }

        foreach (var argument in new[]
        {
            // No --die-with-parent: it ties the sandbox to the *thread* that started it (PR_SET_PDEATHSIG), and .NET
            // starts processes from pool threads that come and go, so sandboxes died at random under load. A sandbox
            // lives until it is disposed; its cgroups are how everything in it is found and killed.
            "--unshare-pid", "--unshare-uts", "--unshare-ipc", "--new-session",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--ro-bind-try", "/etc/alternatives", "/etc/alternatives",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/scratch", "--chdir", "/scratch",
            "--hostname", spec.Hostname, "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/scratch",
        })
        {
            yield return argument;
        }

        foreach (var (name, value) in spec.Environment)
        {
            yield return "--setenv";
            yield return name;
            yield return value;
        }

        yield return "--";
        foreach (var part in spec.Command)
        {
            yield return part;
        }
    }

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex SafeId();
}
