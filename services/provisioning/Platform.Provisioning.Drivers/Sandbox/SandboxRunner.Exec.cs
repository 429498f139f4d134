using System.Diagnostics;
using System.Globalization;
using Platform.Provisioning.Drivers.Guests;

namespace Platform.Provisioning.Drivers.Sandbox;

public sealed partial class SandboxRunner
{
    /// <summary>
    /// The programs between the agent and an exec'd command, below the first (which becomes nsenter): nsenter's child runs
    /// bubblewrap, whose child runs setpriv, which becomes the command.
    /// </summary>
    private static readonly IReadOnlyList<string> ExecLaunchers = ["bwrap", "setpriv"];

    /// <summary>
    /// Starts <paramref name="command"/> inside a running sandbox, confined as its main process is: a shell joins the
    /// sandbox's cgroups (its memory, process and CPU limits), nsenter takes it into the sandbox's user, mount, pid, uts,
    /// ipc, network and cgroup namespaces as the namespace's root (an unprivileged host id), and bubblewrap, there, sets
    /// no_new_privs, keeps only the sandbox's capabilities and loads the same seccomp filter before the command. Its
    /// standard streams are pipes of the agent.
    /// </summary>
    public IGuestProcess Exec(SandboxProcess sandbox, GuestCommand command)
    {
        if (command.Problem() is { } problem)
        {
            throw new GuestException(problem);
        }

        if (command.NumericUser() is not { } user)
        {
            throw new GuestException($"A sandbox has no user database: user is 'root', a uid or uid:gid, not '{command.User}'.");
        }

        if (user.Uid >= IdRanges.Size || user.Gid >= IdRanges.Size)
        {
            throw new GuestException($"A sandbox's users are 0 to {IdRanges.Size - 1}.");
        }

        if (sandbox.HasExited || sandbox.InsideProcessId is not { } inside)
        {
            throw new GuestException("The sandbox has no process running.");
        }

        if (!sandbox.IsSetUp)
        {
            throw new GuestException("The sandbox is still starting: its root is not made yet.");
        }

        var start = new ProcessStartInfo("/bin/sh")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("""
            for procs in $PLATFORM_CGROUP_PROCS; do echo $$ > "$procs" || exit 125; done
            exec "$@" 9<"$PLATFORM_SECCOMP"
            """);
        start.ArgumentList.Add("exec");
        foreach (var argument in ExecArguments(inside, command, user))
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment.Clear();
        start.Environment["PLATFORM_CGROUP_PROCS"] = string.Join(' ', cgroups.ProcessFiles(sandbox.Spec.Id));
        start.Environment["PLATFORM_SECCOMP"] = Path.Combine(RunDirectoryOf(sandbox.Spec.Id), SeccompFile);
        start.Environment["PATH"] = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
        try
        {
            return new LocalGuestProcess(Process.Start(start)!, ExecLaunchers);
        }
        catch (System.ComponentModel.Win32Exception exception)
        {
            throw new GuestException($"The command could not start: {exception.Message}", exception);
        }
    }

    private IEnumerable<string> ExecArguments(int inside, GuestCommand command, (int Uid, int Gid) user)
    {
        yield return "nsenter";
        yield return $"--target={inside.ToString(CultureInfo.InvariantCulture)}";
        foreach (var space in new[] { "--user", "--mount", "--pid", "--uts", "--ipc", "--net", "--cgroup" })
        {
            yield return space;
        }

        yield return "--";
        // In the sandbox's mount namespace, as its root: a new mount namespace that binds the sandbox's whole tree, so that
        // bubblewrap has somewhere to make its own; no new pid namespace (the command is one of the sandbox's processes).
        yield return bubblewrap;
        foreach (var argument in new[]
        {
            "--bind", "/", "/",
            "--new-session", "--die-with-parent",
            "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/scratch",
            "--chdir", command.WorkingDirectory ?? "/scratch",
        })
        {
            yield return argument;
        }

        foreach (var argument in Confined(command.Environment, command.Argv, user))
        {
            yield return argument;
        }
    }
}
