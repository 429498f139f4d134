using System.Diagnostics;
using System.Globalization;

namespace Platform.Provisioning.Drivers.Guests;

/// <summary>
/// A guest process the agent started on its own host through a chain of launchers (a shell that joins the machine's
/// cgroups and becomes nsenter, then bubblewrap): the process the caller asked for is the descendant of the first at the
/// chain's depth, once it no longer runs a launcher's program, and signals go to its process group, as a shell's job
/// control would send them.
/// </summary>
public sealed class LocalGuestProcess : IGuestProcess
{
    private static readonly TimeSpan FindCommandPatience = TimeSpan.FromSeconds(2);

    private readonly Process _launcher;
    private readonly IReadOnlyList<string> _launchers;
    private readonly Pseudoterminal? _terminal;
    private int _disposed;

    /// <param name="launchers">The programs that run, one below the other, between <paramref name="launcher"/> and the command; the last becomes the command.</param>
    /// <param name="terminal">The terminal the launcher put the command on, if any: its streams are then the command's.</param>
    public LocalGuestProcess(Process launcher, IReadOnlyList<string> launchers, Pseudoterminal? terminal = null)
    {
        _launcher = launcher;
        _launchers = launchers;
        _terminal = terminal;
        Exited = WaitAsync();
    }

    public Stream StandardInput => _terminal?.Input ?? _launcher.StandardInput.BaseStream;

    public Stream StandardOutput => _terminal?.Output ?? _launcher.StandardOutput.BaseStream;

    /// <summary>On a terminal, what it writes to stderr is on the terminal too: this stream is then empty.</summary>
    public Stream StandardError => _terminal is null ? _launcher.StandardError.BaseStream : Stream.Null;

    public void Resize(TerminalSize size)
    {
        if (!Exited.IsCompleted)
        {
            _terminal?.Resize(size);
        }
    }

    public Task<int> Exited { get; }

    public void Signal(int signal)
    {
        if (Exited.IsCompleted)
        {
            return;
        }

        if (CommandProcessId() is { } command)
        {
            // Its process group (bubblewrap's --new-session made it the leader); the process alone if that is gone.
            if (Native.kill(-command, signal) != 0)
            {
                _ = Native.kill(command, signal);
            }
        }
        else
        {
            _ = Native.kill(_launcher.Id, signal);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        if (!Exited.IsCompleted)
        {
            Signal(9);
            try
            {
                _launcher.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // It ended meanwhile.
            }

            await Exited.WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { }, TaskScheduler.Default);
        }

        _launcher.Dispose();
        _terminal?.Dispose();
    }

    private async Task<int> WaitAsync()
    {
        await _launcher.WaitForExitAsync();
        return _launcher.ExitCode;
    }

    /// <summary>The command's host pid, waiting a little for the chain to reach it.</summary>
    private int? CommandProcessId()
    {
        var deadline = Stopwatch.StartNew();
        while (!Exited.IsCompleted && deadline.Elapsed < FindCommandPatience)
        {
            var pid = _launcher.Id;
            for (var depth = 0; depth < _launchers.Count && pid != 0; depth++)
            {
                pid = ChildrenOf(pid).FirstOrDefault();
            }

            if (pid != 0 && NameOf(pid) != _launchers[^1])
            {
                return pid;
            }

            Thread.Sleep(5);
        }

        return null;
    }

    private static IEnumerable<int> ChildrenOf(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/task/{pid}/children")
                .Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .Select(c => int.Parse(c, CultureInfo.InvariantCulture));
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private static string NameOf(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/comm").Trim();
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }

    private static class Native
    {
        [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
        public static extern int kill(int pid, int signal);
    }
}
