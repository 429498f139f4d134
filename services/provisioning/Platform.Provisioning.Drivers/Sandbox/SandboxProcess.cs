using System.Diagnostics;
using System.Globalization;
using Platform.Provisioning.Drivers.Processes;

namespace Platform.Provisioning.Drivers.Sandbox;

/// <summary>
/// A running sandbox: a shell in its cgroups that runs bubblewrap and records how its command ended. What the command
/// writes goes to files in the sandbox's run directory, not to pipes of the agent, so that the sandbox outlives a restart
/// of the agent, which then adopts it (<see cref="SandboxRunner.Adopt"/>). Disposing it kills what is left and removes its
/// cgroups and run directory, whatever state it is in.
/// </summary>
public sealed class SandboxProcess : IAsyncDisposable
{
    internal const string PidFile = "pid";
    internal const string ExitFile = "exit";
    internal const string OutputFile = "stdout";
    internal const string ErrorsFile = "stderr";
    private const int MaxKeptOutput = 64 * 1024;
    /// <summary>A command may write for days: past this its output files are emptied (their last bytes are what tells why it ended).</summary>
    private const long MaxOutputFileBytes = 1024 * 1024;

    /// <summary>A native agent answers at once; one that takes longer is not one to wait for.</summary>
    private static readonly TimeSpan GuestAgentHandshakeTimeout = TimeSpan.FromSeconds(2);

    private readonly Process? _child;
    private readonly HostProcess _shell;
    private readonly Cgroups _cgroups;
    private readonly IdRanges _idRanges;
    private readonly string _runDirectory;
    private readonly CancellationTokenSource _trimming = new();
    private readonly Task _exited;
    private readonly bool _withGuestAgent;
    private Guests.GuestAgent? _guestAgent;
    private int _disposed;

    private SandboxProcess(SandboxSpec spec, Process? child, HostProcess shell, Cgroups cgroups, IdRanges idRanges, string runDirectory, bool withGuestAgent)
    {
        _idRanges = idRanges;
        _withGuestAgent = withGuestAgent;
        Spec = spec;
        _child = child;
        _shell = shell;
        _cgroups = cgroups;
        _runDirectory = runDirectory;
        _exited = child is not null ? child.WaitForExitAsync() : shell.WaitForExitAsync(CancellationToken.None);
        _ = Guests.LogFiles.WatchAsync(() => [Path.Combine(_runDirectory, OutputFile), Path.Combine(_runDirectory, ErrorsFile)], MaxOutputFileBytes, _exited, _trimming.Token);
    }

    internal static SandboxProcess Started(SandboxSpec spec, Process child, Cgroups cgroups, IdRanges idRanges, string runDirectory, bool withGuestAgent) =>
        new(spec, child, HostProcess.Find(child.Id) ?? new HostProcess(child.Id, 0), cgroups, idRanges, runDirectory, withGuestAgent);

    /// <summary>A sandbox an earlier agent started: it has a guest agent if its first process is one (older agents started none).</summary>
    internal static SandboxProcess Adopted(SandboxSpec spec, HostProcess shell, Cgroups cgroups, IdRanges idRanges, string runDirectory)
    {
        var first = InsideOf(shell.Id) is { } inside ? FirstChildOf(inside) : null;
        var commandLine = first is { } pid && File.Exists($"/proc/{pid}/cmdline") ? File.ReadAllText($"/proc/{pid}/cmdline") : "";
        return new SandboxProcess(spec, null, shell, cgroups, idRanges, runDirectory,
            withGuestAgent: commandLine.StartsWith(Guests.GuestAgent.Inside + "\0--socket\0", StringComparison.Ordinal));
    }

    /// <summary>The host ids its user namespace maps to (its root is the first); null once it is removed.</summary>
    public IdRange? Ids => _idRanges.HeldBy(_runDirectory);

    public SandboxSpec Spec { get; }

    /// <summary>The shell that holds the sandbox (in its cgroups, outside its namespaces).</summary>
    public int ProcessId => _shell.Id;

    public bool HasExited => _exited.IsCompleted;

    /// <summary>
    /// A process inside the sandbox's namespaces, through which its network is entered: the child of bubblewrap (which
    /// the shell runs, and which itself stays in the host's); null before it has one or once it has ended.
    /// </summary>
    public int? InsideProcessId => InsideOf(ProcessId);

    /// <summary>
    /// Whether bubblewrap has finished making the sandbox's root (its mounts, the pivot into them): the sandbox's first
    /// process forks the command only then. Before, its mount namespace is half made, and nothing may be started in it.
    /// With a guest agent, that first process is the agent, which forks the command once it listens.
    /// </summary>
    /// <remarks>With a guest agent, set up means the agent runs (a sandbox started from files unpacks them first, in a shell
    /// whose child is tar) and has started the command.</remarks>
    public bool IsSetUp => InsideProcessId is { } inside && FirstChildOf(inside) is { } first
        && (!_withGuestAgent || (IsGuestAgent(first) && FirstChildOf(first) is not null));

    private static bool IsGuestAgent(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").StartsWith(Guests.GuestAgent.Inside + "\0", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Its guest agent, the sandbox's first process, which forks what is exec'd: null when it has none.</summary>
    internal Guests.GuestAgent? GuestAgent =>
        _withGuestAgent && _disposed == 0 && !HasExited
            ? LazyInitializer.EnsureInitialized(ref _guestAgent, () => new Guests.GuestAgent("sandbox", ConnectGuestAgentAsync, GuestAgentHandshakeTimeout))
            : null;

    /// <summary>
    /// The abstract socket of the sandbox's network namespace, entered from the host; only a listener in the sandbox's
    /// own cgroup (its agent, or its tenant's code, which gains nothing by standing in) is talked to.
    /// </summary>
    private async Task<System.Net.Sockets.Socket> ConnectGuestAgentAsync(CancellationToken cancellationToken)
    {
        if (InsideProcessId is not { } inside)
        {
            throw new IOException("the sandbox has no process running");
        }

        return await Guests.GuestAgent.ConnectInsideAsync(inside, Guests.GuestAgent.SocketName(Spec.Id), listener =>
            File.Exists($"/proc/{listener}/cgroup") && File.ReadAllText($"/proc/{listener}/cgroup").Contains($"/{Cgroups.Parent}/{Spec.Id}", StringComparison.Ordinal), cancellationToken);
    }

    /// <summary>Waits until the sandbox <see cref="IsSetUp"/> (true) or its command has ended or the time is up (false).</summary>
    public async Task<bool> WaitUntilSetUpAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!IsSetUp)
        {
            if (HasExited || DateTime.UtcNow >= deadline)
            {
                return false;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(2), cancellationToken);
        }

        return true;
    }

    /// <summary>Waits for the sandbox's command to end and tells how.</summary>
    public async Task<SandboxExit> WaitAsync(TimeSpan timeout)
    {
        await _exited.WaitAsync(timeout);
        return new SandboxExit(ExitCode(), Output, Errors, _cgroups.WasOutOfMemory(Spec.Id), _cgroups.HitProcessLimit(Spec.Id));
    }

    /// <summary>The last of what the command wrote to its standard output.</summary>
    public string Output => Tail(OutputFile);

    /// <summary>The last of what the command wrote to its standard error.</summary>
    public string Errors => Tail(ErrorsFile);

    /// <summary>
    /// What the command wrote (<paramref name="query"/>: since when, its last lines), its output, then its errors, then,
    /// when following, what it writes next, until it ends. Its output files are
    /// emptied when they grow past 1 MiB: a follower then starts them again from their beginning.
    /// </summary>
    public IAsyncEnumerable<Guests.LogChunk> ReadLogsAsync(Guests.LogQuery query, CancellationToken cancellationToken) =>
        Guests.LogFiles.ReadAsync([("stdout", Path.Combine(_runDirectory, OutputFile)), ("stderr", Path.Combine(_runDirectory, ErrorsFile))], query, _exited, cancellationToken);

    /// <summary>Ends everything of the sandbox and waits for it; its run directory (its output) stays until it is disposed.</summary>
    public async Task KillAsync()
    {
        // Everything of the sandbox, its shell included, is in its cgroups: emptying them ends it.
        await _cgroups.RemoveAsync(Spec.Id);
        if (_child is { HasExited: false })
        {
            _child.Kill(entireProcessTree: true);
        }

        await _exited;
    }

    public async ValueTask DisposeAsync()
    {
        // A stop and the end of its supervision may both dispose it: the second finds the process object gone.
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        await _trimming.CancelAsync();
        if (_guestAgent is { } agent)
        {
            await agent.DisposeAsync();
        }

        await KillAsync();
        _child?.Dispose();
        // Nothing of it runs any more (its cgroups are gone): its ids can go to the next sandbox.
        _idRanges.Release(_runDirectory);
        SandboxRunner.DeleteRunDirectory(_runDirectory);

        DeleteIfEmpty(Path.GetDirectoryName(_runDirectory)!);
    }

    /// <summary>The runner's folder goes with its last sandbox (another may be starting: then it stays).</summary>
    private static void DeleteIfEmpty(string directory)
    {
        try
        {
            if (Directory.Exists(directory) && !Directory.EnumerateFileSystemEntries(directory).Any())
            {
                Directory.Delete(directory);
            }
        }
        catch (IOException)
        {
            // Not empty after all.
        }
    }

    /// <summary>The command's exit code as the shell recorded it; 128 + the signal when it was killed; null when the shell itself was killed before it could say.</summary>
    private int? ExitCode()
    {
        if (_child is { HasExited: true })
        {
            return _child.ExitCode;
        }

        var file = Path.Combine(_runDirectory, ExitFile);
        return File.Exists(file) && int.TryParse(File.ReadAllText(file).Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var code) ? code : null;
    }

    private string Tail(string name)
    {
        var file = Path.Combine(_runDirectory, name);
        try
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            stream.Seek(Math.Max(0, stream.Length - MaxKeptOutput), SeekOrigin.Begin);
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd();
        }
        catch (Exception exception) when (exception is FileNotFoundException or DirectoryNotFoundException)
        {
            return "";
        }
    }

    private static int? InsideOf(int shell) => FirstChildOf(shell) is { } bubblewrap ? FirstChildOf(bubblewrap) : null;

    private static int? FirstChildOf(int pid)
    {
        try
        {
            var children = File.ReadAllText($"/proc/{pid}/task/{pid}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return children.Length > 0 ? int.Parse(children[0], CultureInfo.InvariantCulture) : null;
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}

/// <summary>
/// How a sandbox's command ended: its exit code (128 + the signal that killed it; null when nothing recorded it),
/// <see cref="OutOfMemory"/> when the kernel killed a process for the memory limit, <see cref="ProcessLimitReached"/>
/// when it refused a fork at the process limit.
/// </summary>
public sealed record SandboxExit(int? ExitCode, string Output, string Errors, bool OutOfMemory, bool ProcessLimitReached);
