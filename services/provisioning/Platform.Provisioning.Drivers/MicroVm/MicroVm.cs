using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Platform.Provisioning.Drivers.Sandbox;

namespace Platform.Provisioning.Drivers.MicroVm;

/// <summary>
/// A running micro-VM: one QEMU process. Disposing it kills QEMU if it still runs and removes its work directory and
/// guest memory, whatever state it is in; the network namespace belongs to the caller and stays.
/// </summary>
public sealed class MicroVm : IAsyncDisposable, Guests.IGuestAccess, Guests.IMachineLogs, Guests.IMachineConsole
{
    /// <summary>QEMU's pid file in the work directory.</summary>
    public const string PidFileName = "qemu.pid";

    /// <summary>The file in its work directory that names its cgroup.</summary>
    public const string CgroupFileName = "cgroup";

    private const int MaxErrorChars = 4096;
    /// <summary>A guest may write to its console for days: past this its serial log is emptied.</summary>
    private const long MaxSerialLogBytes = 1024 * 1024;
    private const int SchedulePolicyNormal = 0;
    private const int NoSuchProcess = 3;

    private readonly Process? _process;
    private readonly Processes.HostProcess? _adopted;
    private readonly MicroVmCgroup? _cgroup;
    private readonly IdRanges? _ids;
    private volatile string? _memoryFile;
    private readonly StringBuilder _errors = new();
    private volatile MicroVmSpec _spec;
    private QmpClient? _qmp;
    private volatile string? _endedBy;
    private Guests.GuestAgent? _guestAgent;
    private readonly CancellationTokenSource _trimming = new();
    /// <summary>Held by the one client of its console.</summary>
    private readonly SemaphoreSlim _console = new(1, 1);
    private int _disposed;

    internal MicroVm(MicroVmSpec spec, string accelerator, Process process, string? memoryFile, MicroVmCgroup? cgroup, IdRanges? ids)
    {
        _spec = spec;
        _cgroup = cgroup;
        _ids = ids;
        Accelerator = accelerator;
        _process = process;
        _memoryFile = memoryFile;
        ProcessId = process.Id;
        var reading = Task.WhenAll(DrainAsync(process.StandardOutput, null), DrainAsync(process.StandardError, _errors));
        Exited = WatchAsync(reading);
        _ = Guests.LogFiles.WatchAsync(() => [SerialLogPath], MaxSerialLogBytes, Exited, _trimming.Token);
    }

    /// <summary>A QEMU that a previous process of the agent started and that still runs: watched through /proc, since it is not this process's child.</summary>
    private MicroVm(MicroVmSpec spec, string accelerator, Processes.HostProcess qemu, string? memoryFile, MicroVmCgroup? cgroup, IdRanges? ids)
    {
        _spec = spec;
        _cgroup = cgroup;
        _ids = ids;
        Accelerator = accelerator;
        _adopted = qemu;
        _memoryFile = memoryFile;
        ProcessId = qemu.Id;
        Exited = WatchAdoptedAsync(qemu);
        _ = Guests.LogFiles.WatchAsync(() => [SerialLogPath], MaxSerialLogBytes, Exited, _trimming.Token);
    }

    internal static MicroVm Adopted(MicroVmSpec spec, string accelerator, Processes.HostProcess qemu, string? memoryFile, MicroVmCgroup? cgroup, IdRanges? ids) =>
        new(spec, accelerator, qemu, memoryFile, cgroup, ids);

    /// <summary>The cgroup its QEMU runs in (under <c>platform/</c>); null for a QEMU adopted from outside any.</summary>
    public string? CgroupId => _cgroup?.Id;

    /// <summary>What it runs as: a pooled VM takes its machine's id, identity, namespace and work directory when it is activated.</summary>
    public MicroVmSpec Spec => _spec;

    public string Id => Spec.Id;

    public int ProcessId { get; }

    /// <summary>"kvm" or "tcg": how the guest's CPUs run.</summary>
    public string Accelerator { get; }

    public string SerialLogPath => Path.Combine(Spec.WorkDirectory, "serial.log");

    /// <summary>Completes when QEMU has exited, on its own, stopped or killed.</summary>
    public Task<MicroVmExit> Exited { get; }

    internal void Become(MicroVmSpec spec) => _spec = spec;

    /// <summary>Renames its memory file (QEMU maps the file, not its name), so that the name says whose it is.</summary>
    /// <summary>
    /// The file in the host's memory directory its guest's memory is shared with (disposing the VM removes it); null when
    /// its memory is mapped privately from a file it does not own (resumed from a paused image).
    /// </summary>
    internal string? MemoryFile => _memoryFile;

    internal void MoveMemoryFile(string to)
    {
        if (_memoryFile is { } from)
        {
            File.Move(from, to);
            _memoryFile = to;
        }
    }

    internal string QmpSocketPath => Path.Combine(Spec.WorkDirectory, "qmp.sock");

    internal string SerialSocketPath => Path.Combine(Spec.WorkDirectory, "serial.sock");

    /// <summary>
    /// What the guest printed on its serial console (kernel, init, whatever writes to <c>/dev/console</c>), as the stream
    /// <c>console</c>, with a terminal's <c>\r\n</c> line ends made <c>\n</c>.
    /// </summary>
    public async IAsyncEnumerable<Guests.LogChunk> ReadLogsAsync(Guests.LogQuery query, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // A '\r' that ends one chunk is held back until the next tells whether a '\n' follows it.
        var heldReturn = false;
        await foreach (var chunk in Guests.LogFiles.ReadAsync([("console", SerialLogPath)], query, Exited, cancellationToken))
        {
            var text = new List<byte>(chunk.Data.Length + 1);
            foreach (var b in chunk.Data.Span)
            {
                if (heldReturn && b != (byte)'\n')
                {
                    text.Add((byte)'\r');
                }

                heldReturn = b == (byte)'\r';
                if (!heldReturn)
                {
                    text.Add(b);
                }
            }

            if (text.Count > 0)
            {
                yield return chunk with { Data = text.ToArray() };
            }
        }
    }

    /// <summary>
    /// The guest's serial console, both ways: QEMU's chardev socket, which takes one client at a time (a second waits
    /// for the first to leave, so it is refused here instead). What it shows is in its logs too.
    /// </summary>
    public async Task<Stream> OpenConsoleAsync(CancellationToken cancellationToken)
    {
        if (!await _console.WaitAsync(0, cancellationToken))
        {
            throw new Guests.GuestException("Someone is connected to this micro-VM's console: it takes one at a time.");
        }

        var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(SerialSocketPath), cancellationToken);
            return new ConsoleStream(socket, _console);
        }
        catch (System.Net.Sockets.SocketException exception)
        {
            socket.Dispose();
            _console.Release();
            throw new Guests.GuestException($"The micro-VM's console cannot be reached: {exception.Message}", exception);
        }
    }

    /// <summary>The console's socket as a stream; disposing it lets the next client in.</summary>
    private sealed class ConsoleStream(System.Net.Sockets.Socket socket, SemaphoreSlim held) : System.Net.Sockets.NetworkStream(socket, ownsSocket: true)
    {
        private int _released;

        protected override void Dispose(bool disposing)
        {
            base.Dispose(disposing);
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                held.Release();
            }
        }
    }

    /// <summary>QEMU's end of the guest agent's virtio-serial port.</summary>
    internal string GuestAgentSocketPath => Path.Combine(Spec.WorkDirectory, "agent.sock");

    /// <summary>How long its guest agent has to answer a new connection: under TCG, a restored guest translates the agent's code afresh.</summary>
    private static readonly TimeSpan GuestAgentHandshakeTimeout = TimeSpan.FromSeconds(15);

    /// <summary>QEMU's end of the agent's port (a micro-VM started by an agent older than the guest agent has none).</summary>
    private async Task<Socket> ConnectGuestAgentAsync(CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(GuestAgentSocketPath), cancellationToken);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Starts <paramref name="command"/> in the guest through its agent: as root (the VM is the boundary) or the uid:gid it
    /// names, in <c>/scratch</c> unless it names a directory, with PATH and HOME unless it sets them.
    /// </summary>
    public Task<Guests.IGuestProcess> StartAsync(Guests.GuestCommand command, CancellationToken cancellationToken)
    {
        if (command.Problem() is { } problem)
        {
            throw new Guests.GuestException(problem);
        }

        if (command.NumericUser() is not { } user)
        {
            throw new Guests.GuestException($"A micro-VM has no user database: user is 'root', a uid or uid:gid, not '{command.User}'.");
        }

        if (Exited.IsCompleted)
        {
            throw new Guests.GuestException("The micro-VM has ended.");
        }

        // The root's own tools first; on an image's root the guest's busybox (/.platform/bin) after them. An image's own
        // variables (its ENV) over these.
        var environment = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/.platform/bin",
            ["HOME"] = user.Uid == 0 ? "/root" : "/scratch",
        };
        foreach (var (name, value) in Spec.Template.Image?.Environment ?? new Dictionary<string, string>())
        {
            environment[name] = value;
        }

        var agent = LazyInitializer.EnsureInitialized(ref _guestAgent, () => new Guests.GuestAgent("micro-VM", ConnectGuestAgentAsync, GuestAgentHandshakeTimeout));
        return agent.StartAsync(command, user.Uid, user.Gid, command.WorkingDirectory ?? "/scratch", environment, cancellationToken);
    }

    /// <summary>Hands the host's end of its guest agent over (to the QEMU a pause ends in): disposing this VM then leaves it alone.</summary>
    internal Guests.GuestAgent? TakeGuestAgent() => Interlocked.Exchange(ref _guestAgent, null);

    /// <summary>Takes over the host's end of a guest agent that went on with this VM's guest (a resume).</summary>
    internal void GiveGuestAgent(Guests.GuestAgent agent) => _guestAgent = agent;

    internal async Task<QmpClient> QmpAsync(CancellationToken cancellationToken) =>
        _qmp ??= await QmpClient.ConnectAsync(QmpSocketPath, Exited, cancellationToken);

    internal string Errors
    {
        get
        {
            lock (_errors)
            {
                return _errors.ToString().Trim();
            }
        }
    }

    /// <summary>Asks QEMU to quit and waits up to <paramref name="grace"/> for it; kills it after that.</summary>
    public async Task StopAsync(TimeSpan grace, CancellationToken cancellationToken)
    {
        if (Exited.IsCompleted)
        {
            return;
        }

        _endedBy ??= "stopped on request";
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(grace);
        try
        {
            // The guest keeps nothing on a disk, so there is nothing to flush: QEMU may simply quit.
            var qmp = await QmpAsync(timeout.Token);
            await qmp.ExecuteAsync("quit", null, timeout.Token);
            await Exited.WaitAsync(timeout.Token);
        }
        catch (Exception exception) when (exception is OperationCanceledException or IOException or InvalidOperationException or System.Net.Sockets.SocketException)
        {
            // No answer in time, or QEMU went away while we asked: make sure of it.
            Kill();
            await Exited;
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    /// <summary>
    /// One heartbeat of the guest agent, from inside the VM's namespace, as readiness probes it: null when it answers
    /// with the identity the VM was given, else what went wrong. The caller's token bounds how long it may take.
    /// </summary>
    public Task<string?> HeartbeatAsync(CancellationToken cancellationToken) => HeartbeatAsync(Spec.Network, cancellationToken);

    /// <summary>The heartbeat asked from <paramref name="from"/>: the VM's tenant segment once it joined one.</summary>
    public async Task<string?> HeartbeatAsync(Networking.NetworkNamespace from, CancellationToken cancellationToken)
    {
        var identity = Spec.Identity;
        try
        {
            using var socket = await from.ConnectAsync(identity.Address, Spec.Template.GuestAgentPort, cancellationToken);
            using var reader = new StreamReader(new System.Net.Sockets.NetworkStream(socket, ownsSocket: false));
            var answer = await reader.ReadLineAsync(cancellationToken);
            return answer == identity.AgentGreeting ? null : $"its guest agent answered '{answer}', not its identity";
        }
        catch (Exception exception) when (exception is System.Net.Sockets.SocketException or IOException)
        {
            return $"its guest agent at {identity.Address}:{Spec.Template.GuestAgentPort} does not answer: {exception.Message}";
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
            _endedBy ??= "killed when disposed";
            Kill();
        }

        await Exited;
        await _trimming.CancelAsync();
        if (_guestAgent is not null)
        {
            await _guestAgent.DisposeAsync();
        }

        if (_qmp is not null)
        {
            await _qmp.DisposeAsync();
        }

        _process?.Dispose();
        if (_cgroup is { } cgroup)
        {
            await cgroup.Cgroups.RemoveAsync(cgroup.Id);
        }

        _ids?.Release(Spec.WorkDirectory);
        if (Directory.Exists(Spec.WorkDirectory))
        {
            Directory.Delete(Spec.WorkDirectory, recursive: true);
        }

        if (_memoryFile is not null)
        {
            File.Delete(_memoryFile);
        }
    }

    /// <summary>
    /// Kills the QEMU that a process before this one left running with <paramref name="workDirectory"/> (its pid file
    /// there tells which) and removes its cgroup, gives back its host ids (leased from <paramref name="ids"/>, the host's by
    /// default) and removes the directory. Nothing there is fine.
    /// </summary>
    public static async Task RemoveLeftoverAsync(string workDirectory, CancellationToken cancellationToken, Sandbox.IdRanges? ids = null)
    {
        string? cgroup = null;
        var pidFile = Path.Combine(workDirectory, PidFileName);
        if (File.Exists(pidFile) && int.TryParse((await File.ReadAllTextAsync(pidFile, cancellationToken)).Trim(), out var pid))
        {
            try
            {
                using var process = Process.GetProcessById(pid);
                // The pid may have been reused since: only a QEMU is killed.
                if (process.ProcessName.StartsWith("qemu-system", StringComparison.Ordinal))
                {
                    cgroup = Cgroups.MemberOf(pid);
                    process.Kill();
                    await process.WaitForExitAsync(cancellationToken);
                }
            }
            catch (Exception exception) when (exception is ArgumentException or InvalidOperationException)
            {
                // Gone already.
            }
        }

        var named = Path.Combine(workDirectory, CgroupFileName);
        cgroup ??= File.Exists(named) ? (await File.ReadAllTextAsync(named, cancellationToken)).Trim() : null;
        if (cgroup is not null && cgroup.StartsWith("microvm-", StringComparison.Ordinal) && !cgroup.Contains('/', StringComparison.Ordinal))
        {
            await Cgroups.Detect().RemoveAsync(cgroup);
        }

        if (Directory.Exists(workDirectory))
        {
            (ids ?? new Sandbox.IdRanges()).Release(workDirectory);
            Directory.Delete(workDirectory, recursive: true);
        }
    }

    /// <summary>
    /// Gives every thread of QEMU the normal scheduling policy, after it ran in the background (SCHED_IDLE). The policy
    /// is a thread's own on Linux, and QEMU's threads inherited it from the one that started them, so each is set.
    /// </summary>
    internal void RunInForeground()
    {
        foreach (var task in Directory.Exists($"/proc/{ProcessId}/task") ? Directory.GetDirectories($"/proc/{ProcessId}/task") : [])
        {
            var normal = 0;
            // A thread that ended meanwhile is no matter; any other failure would leave the machine slow, so it shows.
            if (SetScheduler(int.Parse(Path.GetFileName(task)), SchedulePolicyNormal, ref normal) != 0 && Marshal.GetLastPInvokeError() != NoSuchProcess)
            {
                throw new IOException($"sched_setscheduler for thread {Path.GetFileName(task)} of QEMU {ProcessId} failed: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
            }
        }
    }

    internal void Kill()
    {
        try
        {
            _adopted?.Kill();
            _process?.Kill();
        }
        catch (InvalidOperationException)
        {
            // Exited already.
        }
    }

    private async Task<MicroVmExit> WatchAdoptedAsync(Processes.HostProcess qemu)
    {
        await qemu.WaitForExitAsync(CancellationToken.None);
        // Its parent, not this process, learnt its exit status.
        return new MicroVmExit(null, null, _endedBy ?? "QEMU ended (it was adopted after a restart of the agent, which cannot learn its exit status)",
            SerialConsole.Tail(SerialLogPath));
    }

    private async Task<MicroVmExit> WatchAsync(Task reading)
    {
        var process = _process!;
        await process.WaitForExitAsync();
        await reading;
        var code = process.ExitCode;
        // .NET reports a process ended by a signal as 128 + the signal; QEMU itself exits with 0 or 1.
        int? signal = code > 128 ? code - 128 : null;
        var reason = (_endedBy, signal, code) switch
        {
            ({ } endedBy, _, _) => endedBy,
            (null, { } s, _) => $"QEMU was killed by signal {s}{(s == 9 ? " (SIGKILL)" : s == 15 ? " (SIGTERM)" : "")}",
            (null, null, 0) => "the guest powered off or rebooted (its init ended or its kernel panicked)",
            _ => $"QEMU failed with exit code {code}: {Errors}",
        };
        return new MicroVmExit(signal is null ? code : null, signal, reason, SerialConsole.Tail(SerialLogPath));
    }

    /// <param name="priority">struct sched_param: its one field, the static priority (0 for SCHED_OTHER).</param>
    [DllImport("libc", EntryPoint = "sched_setscheduler", SetLastError = true)]
    private static extern int SetScheduler(int thread, int policy, ref int priority);

    private static async Task DrainAsync(StreamReader reader, StringBuilder? into)
    {
        var buffer = new char[4096];
        int read;
        while ((read = await reader.ReadAsync(buffer)) > 0)
        {
            if (into is null)
            {
                continue;
            }

            lock (into)
            {
                if (into.Length < MaxErrorChars)
                {
                    into.Append(buffer, 0, Math.Min(read, MaxErrorChars - into.Length));
                }
            }
        }
    }
}

/// <summary>
/// How a micro-VM's QEMU ended: its exit code, or the signal that killed it; a short reason for people; and the
/// last of what the guest printed on its serial console.
/// </summary>
public sealed record MicroVmExit(int? ExitCode, int? Signal, string Reason, string SerialTail);

/// <summary>The cgroup a QEMU runs in, and the hierarchy it is in.</summary>
internal sealed record MicroVmCgroup(Cgroups Cgroups, string Id);
