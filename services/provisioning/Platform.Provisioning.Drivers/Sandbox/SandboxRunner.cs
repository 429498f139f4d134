using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Platform.Provisioning.Drivers.Sandbox;

/// <summary>
/// Starts sandboxes: bubblewrap in new pid, network, uts, ipc and mount namespaces, inside cgroups that
/// enforce the limits. The first process joins the cgroups before it becomes bubblewrap, so nothing the
/// sandbox starts can run outside them, not even for an instant.
/// </summary>
public sealed partial class SandboxRunner(Cgroups cgroups, string bubblewrap = "/usr/bin/bwrap")
{
    public Cgroups Cgroups => cgroups;

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
        var procs = cgroups.Create(spec.Id, spec.Limits);
        try
        {
            var start = new ProcessStartInfo("/bin/sh")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            // sh writes its own pid into every cgroup, then becomes bubblewrap: all descendants are inside.
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add("for procs in $PLATFORM_CGROUP_PROCS; do echo $$ > \"$procs\" || exit 125; done; exec \"$@\"");
            start.ArgumentList.Add("sandbox");
            foreach (var argument in BubblewrapArguments(spec))
            {
                start.ArgumentList.Add(argument);
            }

            start.Environment.Clear();
            start.Environment["PLATFORM_CGROUP_PROCS"] = string.Join(' ', procs);
            start.Environment["PATH"] = "/usr/local/bin:/usr/bin:/bin";
            return new SandboxProcess(spec, Process.Start(start)!, cgroups);
        }
        catch
        {
            cgroups.RemoveAsync(spec.Id).GetAwaiter().GetResult();
            throw;
        }
    }

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
