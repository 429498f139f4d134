using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Globalization;
using System.IO.Pipes;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
namespace Platform.Provisioning.Drivers.Guests;

/// <summary>
/// The host's end of a guest agent (templates/guest-agent): in a micro-VM, QEMU's virtio-serial port
/// <c>platform.agent</c>, a unix socket in the VM's work directory that nothing in any VM's network reaches; in a
/// sandbox, the abstract socket its first process listens on in the sandbox's network namespace. One connection carries
/// every command's frames (docs/drivers/microvm.md, "The guest agent"); it is made on the first command and again after
/// it broke. A new connection is a new session: the guest kills what it still ran for the last one.
/// </summary>
/// <param name="machine">What the agent runs in, for messages ("micro-VM", "sandbox").</param>
/// <param name="connect">Opens a connection to the agent.</param>
/// <param name="handshakeTimeout">How long the agent has to answer a new connection.</param>
public sealed class GuestAgent(string machine, Func<CancellationToken, Task<Socket>> connect, TimeSpan handshakeTimeout) : IAsyncDisposable
{
    /// <summary>Where a sandbox or container sees its guest agent (read-only, bound from the host's file).</summary>
    public const string Inside = "/.platform/guest-agent";

    /// <summary>The guest agent the build put next to these drivers (their project compiles it with gcc).</summary>
    public static string Built()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "platform-guest-agent");
        return File.Exists(path) ? path : throw new FileNotFoundException($"The guest agent is not at {path}: the build of Platform.Provisioning.Drivers makes it with gcc (apt-get install gcc libc6-dev).", path);
    }

    /// <summary>The abstract unix socket the guest agent of the machine named <paramref name="name"/> listens on, in the machine's network namespace.</summary>
    public static string SocketName(string name) => "platform-guest-agent-" + name;

    /// <summary>
    /// Connects to the guest agent of the process <paramref name="processId"/>'s machine, on its abstract socket in the
    /// process's network namespace, and talks only to a listener that <paramref name="isInside"/> says is inside it (the
    /// agent, or the machine's own code, which gains nothing by standing in).
    /// </summary>
    public static async Task<Socket> ConnectInsideAsync(int processId, string socketName, Func<int, bool> isInside, CancellationToken cancellationToken)
    {
        var socket = await Networking.NetworkNamespace.OfProcess(processId).ConnectAbstractAsync(socketName, cancellationToken);
        try
        {
            var credentials = new byte[12];
            socket.GetRawSocketOption(SolSocket, SoPeerCredentials, credentials);
            var listener = BitConverter.ToInt32(credentials, 0);
            return isInside(listener) ? socket : throw new IOException($"the socket's listener (pid {listener}) is not in the machine");
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private const int SolSocket = 1;
    private const int SoPeerCredentials = 17;

    private readonly SemaphoreSlim _connecting = new(1, 1);
    private Session? _session;
    private volatile bool _unavailable;
    private int _disposed;

    /// <summary>
    /// Starts <paramref name="command"/> as <paramref name="uid"/>:<paramref name="gid"/> in <paramref name="workingDirectory"/>,
    /// with the machine's <paramref name="environment"/>, <c>TERM</c> on a terminal, and the command's own variables over them.
    /// </summary>
    public async Task<IGuestProcess> StartAsync(GuestCommand command, int uid, int gid, string workingDirectory, IReadOnlyDictionary<string, string> environment, CancellationToken cancellationToken)
    {
        var session = await SessionAsync(cancellationToken);
        return await session.StartAsync(StartPayload(command.Argv, uid, gid, workingDirectory, command.Terminal, EnvironmentOf(command, environment)), cancellationToken);
    }

    /// <summary>
    /// <see cref="StartAsync"/>, for a machine that has another way in: null when the agent does not answer, now or any
    /// time before (it is not asked again).
    /// </summary>
    public async Task<IGuestProcess?> TryStartAsync(GuestCommand command, int uid, int gid, string workingDirectory, IReadOnlyDictionary<string, string> environment, CancellationToken cancellationToken)
    {
        if (_unavailable)
        {
            return null;
        }

        try
        {
            return await StartAsync(command, uid, gid, workingDirectory, environment, cancellationToken);
        }
        catch (GuestAgentUnavailableException)
        {
            _unavailable = true;
            return null;
        }
    }

    /// <summary>Whether it answered, or has not been asked yet; false once it did not answer.</summary>
    public bool MayAnswer => !_unavailable;

    /// <summary>
    /// Before the connection is cut on purpose (a micro-VM paused to disk, whose QEMU ends): its end is then no loss. Nothing is
    /// sent meanwhile, and what the guest sent up to the cut is read. The session goes on over the next connection
    /// (<see cref="ResumeOnAsync"/>), without a new handshake: the guest must not have seen the cut (its vCPUs are stopped
    /// before and run again after). False when there is no session to keep.
    /// </summary>
    public async Task<bool> SuspendAsync(CancellationToken cancellationToken)
    {
        await _connecting.WaitAsync(cancellationToken);
        try
        {
            if (_session is not { IsBroken: false } session)
            {
                return false;
            }

            await session.SuspendAsync(cancellationToken);
            return true;
        }
        finally
        {
            _connecting.Release();
        }
    }

    /// <summary>Goes on with the suspended session over <paramref name="socket"/>, the guest's port again; or, null, over the same connection (the cut did not happen).</summary>
    public void ResumeOn(Socket? socket) => _session?.ResumeOn(socket);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        if (_session is { } session)
        {
            await session.DisposeAsync();
        }

        _connecting.Dispose();
    }

    private async Task<Session> SessionAsync(CancellationToken cancellationToken)
    {
        await _connecting.WaitAsync(cancellationToken);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed == 1, this);
            if (_session is { IsBroken: false } open)
            {
                return open;
            }

            if (_session is { } broken)
            {
                await broken.DisposeAsync();
            }

            _session = await Session.OpenAsync(machine, connect, handshakeTimeout, cancellationToken);
            return _session;
        }
        finally
        {
            _connecting.Release();
        }
    }

    /// <summary>
    /// START's payload: uid, gid, working directory, the terminal's size (<c>COLUMNSxROWS</c>, empty for pipes), the number
    /// of arguments, the arguments, the environment; each ends in a NUL.
    /// </summary>
    private static byte[] StartPayload(IReadOnlyList<string> argv, int uid, int gid, string workingDirectory, TerminalSize? terminal, IReadOnlyDictionary<string, string> environment)
    {
        var text = new StringBuilder();
        foreach (var field in new[] { uid.ToString(CultureInfo.InvariantCulture), gid.ToString(CultureInfo.InvariantCulture), workingDirectory, SizeText(terminal), argv.Count.ToString(CultureInfo.InvariantCulture) }
            .Concat(argv)
            .Concat(environment.Select(pair => $"{pair.Key}={pair.Value}")))
        {
            text.Append(field).Append('\0');
        }

        return Encoding.UTF8.GetBytes(text.ToString());
    }

    private static Dictionary<string, string> EnvironmentOf(GuestCommand command, IReadOnlyDictionary<string, string> machine)
    {
        var environment = new Dictionary<string, string>(machine, StringComparer.Ordinal);
        if (command.Terminal is not null)
        {
            environment["TERM"] = "xterm-256color";
        }

        foreach (var (name, value) in command.Environment)
        {
            environment[name] = value;
        }

        return environment;
    }

    private static string SizeText(TerminalSize? size) => size is null ? "" : FormattableString.Invariant($"{size.Columns}x{size.Rows}");

    private enum FrameType : byte
    {
        Sync = 1,
        Start = 2,
        Input = 3,
        Signal = 4,
        Resize = 5,
        Hello = 64,
        Started = 65,
        Failed = 66,
        Output = 67,
        Errors = 68,
        Exited = 69,
    }

    /// <summary>One connection to the guest agent and the processes started over it.</summary>
    private sealed class Session : IAsyncDisposable
    {
        private const int HeaderSize = 9;
        private const int MaxFrameFromGuest = 64 * 1024;
        internal const int MaxInputFrame = 64 * 1024;
        private static readonly byte[] Greeting = "PLATFORM-GUEST-AGENT/1"u8.ToArray();

        private readonly Connection _connection;
        private readonly SemaphoreSlim _writing = new(1, 1);
        private readonly ConcurrentDictionary<uint, Process> _processes = new();
        private readonly Task _reading;
        private uint _lastId;
        private volatile bool _broken;

        private readonly string _machine;

        private Session(string machine, Connection connection)
        {
            _machine = machine;
            _connection = connection;
            _reading = ReadAsync(new BufferedStream(connection, 64 * 1024));
        }

        public bool IsBroken => _broken;

        public static async Task<Session> OpenAsync(string machine, Func<CancellationToken, Task<Socket>> connect, TimeSpan handshakeTimeout, CancellationToken cancellationToken)
        {
            Socket socket;
            try
            {
                socket = await connect(cancellationToken);
            }
            catch (Exception exception) when (exception is SocketException or IOException)
            {
                throw new GuestAgentUnavailableException($"The {machine}'s guest agent cannot be reached: {exception.Message}", exception);
            }

            try
            {
                var nonce = RandomNumberGenerator.GetBytes(16);
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(handshakeTimeout);
                var connection = new Connection(socket);
                await connection.WriteAsync(Frame(FrameType.Sync, 0, nonce), timeout.Token);
                // Read byte by byte: what follows the greeting is the session's, read by its loop.
                await SkipToAsync(connection, Frame(FrameType.Hello, 0, [.. Greeting, .. nonce]), timeout.Token);
                return new Session(machine, connection);
            }
            catch (Exception exception) when (exception is IOException or SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                socket.Dispose();
                throw new GuestAgentUnavailableException($"The {machine}'s guest agent does not answer.", exception);
            }
        }

        public async Task<IGuestProcess> StartAsync(byte[] payload, CancellationToken cancellationToken)
        {
            var id = Interlocked.Increment(ref _lastId);
            var process = new Process(this, id);
            _processes[id] = process;
            try
            {
                await SendAsync(FrameType.Start, id, payload, cancellationToken);
                await process.Started.Task.WaitAsync(cancellationToken);
                return process;
            }
            catch (Exception exception) when (exception is IOException or SocketException or ObjectDisposedException)
            {
                _processes.TryRemove(id, out _);
                throw new GuestException($"The {_machine}'s guest agent went away.", exception);
            }
            catch
            {
                _processes.TryRemove(id, out _);
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            _broken = true;
            _connection.Shut();
            await _reading;
            _writing.Dispose();
        }

        /// <summary>Holds every writer back and has the reader wait at the connection's end for the next one.</summary>
        public async Task SuspendAsync(CancellationToken cancellationToken)
        {
            await _writing.WaitAsync(cancellationToken);
            _connection.Suspend();
        }

        public void ResumeOn(Socket? socket)
        {
            _connection.Resume(socket);
            _writing.Release();
        }

        internal async Task SendAsync(FrameType type, uint id, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
        {
            var frame = Frame(type, id, payload.Span);
            await _writing.WaitAsync(cancellationToken);
            try
            {
                await _connection.WriteAsync(frame, cancellationToken);
            }
            finally
            {
                _writing.Release();
            }
        }

        internal void Forget(uint id) => _processes.TryRemove(id, out _);

        private static byte[] Frame(FrameType type, uint id, ReadOnlySpan<byte> payload)
        {
            var frame = new byte[HeaderSize + payload.Length];
            BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)payload.Length);
            frame[4] = (byte)type;
            BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(5), id);
            payload.CopyTo(frame.AsSpan(HeaderSize));
            return frame;
        }

        /// <summary>Reads past everything up to and including <paramref name="pattern"/>: what an earlier session left in the port comes first.</summary>
        private static async Task SkipToAsync(Stream reader, byte[] pattern, CancellationToken cancellationToken)
        {
            var window = new byte[pattern.Length];
            var one = new byte[1];
            var seen = 0L;
            while (true)
            {
                if (await reader.ReadAsync(one, cancellationToken) == 0)
                {
                    throw new IOException("The guest agent's port closed.");
                }

                Array.Copy(window, 1, window, 0, window.Length - 1);
                window[^1] = one[0];
                if (++seen >= pattern.Length && window.AsSpan().SequenceEqual(pattern))
                {
                    return;
                }
            }
        }

        private async Task ReadAsync(Stream reader)
        {
            var header = new byte[HeaderSize];
            try
            {
                while (true)
                {
                    await reader.ReadExactlyAsync(header);
                    var length = BinaryPrimitives.ReadUInt32BigEndian(header);
                    if (length > MaxFrameFromGuest)
                    {
                        throw new IOException($"The guest agent sent a frame of {length} bytes.");
                    }

                    var payload = new byte[length];
                    await reader.ReadExactlyAsync(payload);
                    var id = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(5));
                    if (_processes.TryGetValue(id, out var process))
                    {
                        await process.TakeAsync((FrameType)header[4], payload);
                    }
                }
            }
            catch (Exception exception) when (exception is IOException or SocketException or ObjectDisposedException or EndOfStreamException)
            {
                // The agent (or the QEMU or sandbox it runs in) went away, or the session is disposed.
            }
            finally
            {
                _broken = true;
                foreach (var process in _processes.Values)
                {
                    process.Lost();
                }

                _processes.Clear();
            }
        }
    }

    /// <summary>
    /// A session's byte stream over one socket at a time. Suspended, the end of the current socket is not the end of the
    /// stream: a read waits there for the next socket and goes on with it, so that a frame cut in two by the swap reads whole.
    /// </summary>
    private sealed class Connection(Socket socket) : Stream
    {
        private volatile Socket _socket = socket;
        private volatile TaskCompletionSource<Socket?>? _next;
        private volatile bool _closed;

        public void Suspend() => _next = new TaskCompletionSource<Socket?>(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Goes on over <paramref name="socket"/> (the old one is closed), or over the same one when null.</summary>
        public void Resume(Socket? socket)
        {
            var next = _next;
            _next = null;
            if (socket is not null)
            {
                var old = _socket;
                _socket = socket;
                old.Dispose();
            }

            next?.TrySetResult(socket);
        }

        public void Shut()
        {
            _closed = true;
            _next?.TrySetResult(null);
            try
            {
                _socket.Shutdown(SocketShutdown.Both);
            }
            catch (SocketException)
            {
                // Gone already.
            }

            _socket.Dispose();
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            while (true)
            {
                var socket = _socket;
                var next = _next;
                int read;
                try
                {
                    read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
                }
                catch (Exception exception) when (exception is SocketException or ObjectDisposedException
                    && !_closed && (next is not null || _next is not null || !ReferenceEquals(socket, _socket)))
                {
                    // The socket a suspension cut, or the one a resume replaced.
                    read = 0;
                }

                if (read > 0 || _closed)
                {
                    return read;
                }

                if (!ReferenceEquals(socket, _socket))
                {
                    continue;
                }

                // Cut on purpose: wait for the connection it goes on over; none (closed, or the cut was real) ends it.
                if ((next ?? _next) is not { } waiting || await waiting.Task.WaitAsync(cancellationToken) is null)
                {
                    return 0;
                }
            }
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            while (buffer.Length > 0)
            {
                var sent = await _socket.SendAsync(buffer, SocketFlags.None, cancellationToken);
                buffer = buffer[sent..];
            }
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count).GetAwaiter().GetResult();

        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer, offset, count).GetAwaiter().GetResult();

        public override bool CanRead => true;

        public override bool CanWrite => true;

        public override bool CanSeek => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }

    /// <summary>A command in the guest: its output and errors arrive as frames and leave through pipes (on a terminal, all is output).</summary>
    private sealed class Process : IGuestProcess
    {
        /// <summary>What a process answers whose guest went away before it said how it ended.</summary>
        private const int LostExitCode = 255;

        private readonly Session _session;
        private readonly uint _id;
        private readonly AnonymousPipeServerStream _output = new(PipeDirection.Out);
        private readonly AnonymousPipeServerStream _errors = new(PipeDirection.Out);
        private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _disposed;

        public Process(Session session, uint id)
        {
            _session = session;
            _id = id;
            StandardOutput = new AnonymousPipeClientStream(PipeDirection.In, _output.ClientSafePipeHandle);
            StandardError = new AnonymousPipeClientStream(PipeDirection.In, _errors.ClientSafePipeHandle);
            StandardInput = new Input(this);
        }

        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Stream StandardInput { get; }

        public Stream StandardOutput { get; }

        public Stream StandardError { get; }

        public Task<int> Exited => _exited.Task;

        public void Signal(int signal)
        {
            if (!Exited.IsCompleted)
            {
                _ = SendQuietlyAsync(FrameType.Signal, Encoding.ASCII.GetBytes(signal.ToString(CultureInfo.InvariantCulture)));
            }
        }

        public void Resize(TerminalSize size)
        {
            if (!Exited.IsCompleted)
            {
                _ = SendQuietlyAsync(FrameType.Resize, Encoding.ASCII.GetBytes(SizeText(size)));
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
                await Exited.WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { }, TaskScheduler.Default);
            }

            _session.Forget(_id);
            _output.Dispose();
            _errors.Dispose();
            StandardOutput.Dispose();
            StandardError.Dispose();
        }

        internal async Task TakeAsync(FrameType type, byte[] payload)
        {
            switch (type)
            {
                case FrameType.Started:
                    Started.TrySetResult();
                    break;
                case FrameType.Failed:
                    _session.Forget(_id);
                    Started.TrySetException(new GuestException($"The command could not start: {Encoding.UTF8.GetString(payload)}"));
                    break;
                case FrameType.Output or FrameType.Errors:
                    try
                    {
                        await (type == FrameType.Output ? _output : _errors).WriteAsync(payload);
                    }
                    catch (Exception exception) when (exception is IOException or ObjectDisposedException)
                    {
                        // Nobody reads that stream any more: what it writes is dropped, the rest still flows.
                    }

                    break;
                case FrameType.Exited:
                    _session.Forget(_id);
                    Close(int.TryParse(Encoding.ASCII.GetString(payload), CultureInfo.InvariantCulture, out var code) ? code : LostExitCode);
                    break;
            }
        }

        internal void Lost()
        {
            Started.TrySetException(new GuestException("The guest agent went away."));
            Close(LostExitCode);
        }

        private void Close(int exitCode)
        {
            _output.Dispose();
            _errors.Dispose();
            _exited.TrySetResult(exitCode);
        }

        internal async Task SendQuietlyAsync(FrameType type, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
        {
            try
            {
                await _session.SendAsync(type, _id, payload, cancellationToken);
            }
            catch (Exception exception) when (exception is IOException or SocketException or ObjectDisposedException)
            {
                // The guest is gone; the process ends with it.
            }
        }

        /// <summary>Writes go to the command's stdin in frames; closing it is the end of its input.</summary>
        private sealed class Input(Process process) : GuestInput
        {
            protected override async Task WriteToProcessAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
            {
                for (var at = 0; at < buffer.Length; at += Session.MaxInputFrame)
                {
                    if (process.Exited.IsCompleted)
                    {
                        throw new IOException("The command has ended.");
                    }

                    await process._session.SendAsync(FrameType.Input, process._id, buffer.Slice(at, Math.Min(Session.MaxInputFrame, buffer.Length - at)), cancellationToken);
                }
            }

            // An empty INPUT frame is the end of the input.
            protected override void EndOfInput() => _ = process.SendQuietlyAsync(FrameType.Input, ReadOnlyMemory<byte>.Empty);
        }
    }
}

/// <summary>No session could be had with a machine's guest agent: it does not listen, or does not answer.</summary>
public sealed class GuestAgentUnavailableException(string message, Exception inner) : GuestException(message, inner);
