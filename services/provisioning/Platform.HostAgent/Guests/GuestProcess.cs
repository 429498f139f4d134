using System.Diagnostics;
using Platform.Provisioning.Drivers.Guests;

namespace Platform.HostAgent.Guests;

/// <summary>What a caller asks to run: the API's exec request.</summary>
public sealed record ExecRequest(
    IReadOnlyList<string>? Command,
    IReadOnlyDictionary<string, string>? Env = null,
    string? Cwd = null,
    string? User = null,
    string? Stdin = null,
    int? TimeoutSeconds = null,
    bool Tty = false,
    bool Background = false,
    int? Columns = null,
    int? Rows = null);

/// <summary>A process as the API lists it.</summary>
public sealed record GuestProcessView(
    Guid ProcessId,
    IReadOnlyList<string> Command,
    string? User,
    string State,
    int? ExitCode,
    bool TimedOut,
    bool Background,
    bool Tty,
    long OutputBytes,
    DateTimeOffset StartedAt,
    DateTimeOffset? EndedAt,
    string StartedBy);

/// <summary>
/// One process the agent runs inside a machine for a caller: its output, kept for readers; its input, open for a
/// background process until the caller closes it; how it ended. It ends by itself, at its time limit, or with its machine.
/// </summary>
public sealed class GuestProcess
{
    private readonly IGuestProcess _process;
    private readonly SemaphoreSlim _input = new(1, 1);
    private static readonly TimeSpan StreamsGrace = TimeSpan.FromSeconds(1);
    /// <summary>Started when the command was asked for: a command may end before its start is even answered.</summary>
    private readonly Stopwatch _clock;
    private int _timedOut;

    public GuestProcess(Guid id, Guid machineId, Guid tenantId, GuestCommand command, string actor, bool background, IGuestProcess process, long maxOutputBytes, DateTimeOffset startedAt, Stopwatch clock)
    {
        _clock = clock;
        Id = id;
        MachineId = machineId;
        TenantId = tenantId;
        Command = command;
        Actor = actor;
        Background = background;
        StartedAt = startedAt;
        _process = process;
        Output = new GuestOutput(maxOutputBytes);
    }

    public Guid Id { get; }

    public Guid MachineId { get; }

    public Guid TenantId { get; }

    public GuestCommand Command { get; }

    public string Actor { get; }

    public bool Background { get; }

    public DateTimeOffset StartedAt { get; }

    public GuestOutput Output { get; }

    public int? ExitCode { get; private set; }

    public DateTimeOffset? EndedAt { get; private set; }

    public bool TimedOut => _timedOut == 1;

    public TimeSpan Duration => _clock.Elapsed;

    /// <summary>Completes once it has ended and all it wrote is in <see cref="Output"/>.</summary>
    public Task Ended { get; private set; } = Task.CompletedTask;

    public GuestProcessView View() => new(Id, Command.Argv, Command.User, EndedAt is null ? "running" : "exited", ExitCode, TimedOut, Background, Command.Terminal is not null, Output.End, StartedAt, EndedAt, Actor);

    /// <summary>Relays its output until it ends, ending it at <paramref name="timeout"/>; <paramref name="ended"/> is told once.</summary>
    public void Run(TimeSpan timeout, TimeProvider time, Func<GuestProcess, Task> ended)
    {
        Ended = RunAsync(timeout, time, ended);
    }

    private async Task RunAsync(TimeSpan timeout, TimeProvider time, Func<GuestProcess, Task> ended)
    {
        var output = PumpAsync("stdout", _process.StandardOutput);
        var errors = PumpAsync("stderr", _process.StandardError);
        using var limit = new CancellationTokenSource(timeout, time);
        await using (limit.Token.Register(() =>
        {
            Interlocked.Exchange(ref _timedOut, 1);
            _process.Signal(9);
        }))
        {
            var code = await _process.Exited;
            // What it left running in the background may hold its output open: what they write later is not its output.
            await Task.WhenAny(Task.WhenAll(output, errors), Task.Delay(StreamsGrace, time));
            _clock.Stop();
            ExitCode = code;
            EndedAt = time.GetUtcNow();
        }

        Output.Complete();
        await CloseInputAsync();
        await _process.DisposeAsync();
        await ended(this);
    }

    /// <summary>Writes to its standard input; closes it after when <paramref name="close"/>. False once its input is closed.</summary>
    public async Task<bool> WriteInputAsync(ReadOnlyMemory<byte> data, bool close, CancellationToken cancellationToken)
    {
        await _input.WaitAsync(cancellationToken);
        try
        {
            if (_inputClosed)
            {
                return false;
            }

            try
            {
                if (!data.IsEmpty)
                {
                    await _process.StandardInput.WriteAsync(data, cancellationToken);
                    await _process.StandardInput.FlushAsync(cancellationToken);
                }
            }
            catch (IOException)
            {
                // It closed its input, or ended: what it did not read is lost, as in a pipe.
                close = true;
            }

            if (close)
            {
                CloseInputLocked();
            }

            return true;
        }
        finally
        {
            _input.Release();
        }
    }

    /// <summary>Copies <paramref name="source"/> to its standard input, then closes it.</summary>
    public async Task CopyInputAsync(Stream source, CancellationToken cancellationToken)
    {
        await _input.WaitAsync(cancellationToken);
        try
        {
            await source.CopyToAsync(_process.StandardInput, cancellationToken);
            CloseInputLocked();
        }
        catch (IOException)
        {
            CloseInputLocked();
        }
        finally
        {
            _input.Release();
        }
    }

    public void Signal(int signal) => _process.Signal(signal);

    /// <summary>Resizes its terminal; false when it has none.</summary>
    public bool Resize(TerminalSize size)
    {
        if (Command.Terminal is null)
        {
            return false;
        }

        _process.Resize(size);
        return true;
    }

    private bool _inputClosed;

    private async Task CloseInputAsync()
    {
        await _input.WaitAsync();
        try
        {
            CloseInputLocked();
        }
        finally
        {
            _input.Release();
        }
    }

    private void CloseInputLocked()
    {
        if (_inputClosed)
        {
            return;
        }

        _inputClosed = true;
        try
        {
            _process.StandardInput.Close();
        }
        catch (IOException)
        {
            // It ended already.
        }
    }

    private async Task PumpAsync(string stream, Stream source)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            int read;
            while ((read = await source.ReadAsync(buffer)) > 0)
            {
                Output.Append(stream, buffer.AsSpan(0, read));
            }
        }
        catch (Exception exception) when (exception is IOException or ObjectDisposedException)
        {
            // Its end of the pipe went with it.
        }
    }
}
