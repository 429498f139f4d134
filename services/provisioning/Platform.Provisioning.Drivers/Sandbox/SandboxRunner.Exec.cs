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
    /// On a terminal, setpriv becomes util-linux's setsid (the sandbox sees the host's /usr), which forks the command into
    /// a session of its own, inside the sandbox's pid namespace, whose controlling terminal it makes the new one: a shell's
    /// job control then sees its own process groups.
    /// </summary>
    private static readonly IReadOnlyList<string> TerminalLaunchers = ["bwrap", "setpriv", "setsid"];

    private static readonly string[] OnTerminal = ["/usr/bin/setsid", "--ctty", "--wait"];

    /// <summary>What an exec'd command's environment starts from (the long way sets the same with bubblewrap).</summary>
    private static readonly Dictionary<string, string> SandboxEnvironment = new(StringComparer.Ordinal)
    {
        ["PATH"] = "/usr/local/bin:/usr/bin:/bin",
        ["HOME"] = "/scratch",
    };

    /// <summary>
    /// Starts <paramref name="command"/> inside a running sandbox, confined as its main process is. Its guest agent, the
    /// sandbox's first process, forks it: born in the sandbox's namespaces and cgroups, under its seccomp filter, its
    /// no_new_privs and its capability bounds. A sandbox without one (started by an older agent), or whose agent does not
    /// answer, is entered the long way (<see cref="EnterAndRun"/>).
    /// </summary>
    public async Task<IGuestProcess> ExecAsync(SandboxProcess sandbox, GuestCommand command, CancellationToken cancellationToken)
    {
        var user = Checked(sandbox, command);
        if (sandbox.GuestAgent is { } agent
            && await agent.TryStartAsync(command, user.Uid, user.Gid, command.WorkingDirectory ?? "/scratch", SandboxEnvironment, cancellationToken) is { } forked)
        {
            return forked;
        }

        return EnterAndRun(sandbox, command, user);
    }

    /// <summary>
    /// Saves what the sandbox holds in <c>/scratch</c> (its home and working directory) as a tar archive at
    /// <paramref name="archive"/>, with owners and modes, running or paused: tar runs inside it the long way (as its root,
    /// under its seccomp filter and capability bounds), but outside its cgroups, which a pause has frozen. A sandbox started
    /// with <see cref="SandboxSpec.Files"/> set to the archive finds the same files. Returns the archive's size in bytes.
    /// </summary>
    public async Task<long> SaveFilesAsync(SandboxProcess sandbox, string archive, CancellationToken cancellationToken)
    {
        var command = new GuestCommand(["tar", "--numeric-owner", "-C", "/scratch", "-cf", "-", "."]);
        await using var tar = EnterAndRun(sandbox, command, Checked(sandbox, command), joinCgroups: false);
        tar.StandardInput.Close();
        var errors = new StreamReader(tar.StandardError).ReadToEndAsync(cancellationToken);
        try
        {
            await using (var file = new FileStream(archive, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                await tar.StandardOutput.CopyToAsync(file, 1 << 16, cancellationToken);
            }

            var exitCode = await tar.Exited.WaitAsync(cancellationToken);
            return exitCode == 0 ? new FileInfo(archive).Length
                : throw new IOException($"tar could not save the sandbox's files (exit code {exitCode}): {(await errors).Trim()}");
        }
        catch
        {
            File.Delete(archive);
            throw;
        }
    }

    /// <summary>The user <paramref name="command"/> runs as, once it is one a sandbox can run now.</summary>
    private static (int Uid, int Gid) Checked(SandboxProcess sandbox, GuestCommand command)
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

        if (sandbox.HasExited || sandbox.InsideProcessId is null)
        {
            throw new GuestException("The sandbox has no process running.");
        }

        if (!sandbox.IsSetUp)
        {
            throw new GuestException("The sandbox is still starting: its root is not made yet.");
        }

        return user;
    }

    /// <summary>
    /// The long way in: a shell joins the sandbox's cgroups (its memory, process and CPU limits), nsenter takes it into the
    /// sandbox's user, mount, pid, uts, ipc, network and cgroup namespaces as the namespace's root (an unprivileged host
    /// id), and bubblewrap, there, sets no_new_privs, keeps only the sandbox's capabilities and loads the same seccomp
    /// filter before the command. Its standard streams are pipes of the agent.
    /// </summary>
    /// <param name="joinCgroups">False only for the agent's own short work on a sandbox that may be frozen (saving its files).</param>
    private IGuestProcess EnterAndRun(SandboxProcess sandbox, GuestCommand command, (int Uid, int Gid) user, bool joinCgroups = true)
    {
        if (sandbox.InsideProcessId is not { } inside)
        {
            throw new GuestException("The sandbox has no process running.");
        }

        var terminal = command.Terminal is { } size ? Pseudoterminal.Open(size) : null;
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
            if [ -n "$PLATFORM_TTY" ]; then exec 0<>"$PLATFORM_TTY" 1>&0 2>&0 || exit 125; fi
            exec "$@" 9<"$PLATFORM_SECCOMP"
            """);
        start.ArgumentList.Add("exec");
        foreach (var argument in ExecArguments(inside, command, user))
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment.Clear();
        start.Environment["PLATFORM_CGROUP_PROCS"] = joinCgroups ? string.Join(' ', cgroups.ProcessFiles(sandbox.Spec.Id)) : "";
        start.Environment["PLATFORM_SECCOMP"] = Path.Combine(RunDirectoryOf(sandbox.Spec.Id), SeccompFile);
        start.Environment["PATH"] = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
        if (terminal is not null)
        {
            start.Environment["PLATFORM_TTY"] = terminal.SecondaryPath;
        }

        try
        {
            return new LocalGuestProcess(Process.Start(start)!, terminal is null ? ExecLaunchers : TerminalLaunchers, terminal);
        }
        catch (System.ComponentModel.Win32Exception exception)
        {
            terminal?.Dispose();
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

        if (command.Terminal is not null)
        {
            yield return "--setenv";
            yield return "TERM";
            yield return "xterm-256color";
        }

        foreach (var argument in Confined(command.Environment, command.Terminal is null ? command.Argv : [.. OnTerminal, .. command.Argv], user))
        {
            yield return argument;
        }
    }
}
