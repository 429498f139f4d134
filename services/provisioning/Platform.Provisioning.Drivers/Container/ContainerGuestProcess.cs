using System.IO.Pipes;
using Docker.DotNet;
using Docker.DotNet.Models;
using Platform.Provisioning.Drivers.Guests;

namespace Platform.Provisioning.Drivers.Container;

/// <summary>
/// A process the engine's exec API runs in a container: its attached stream, which carries stdout and stderr in one
/// (the engine's multiplexed frames), is split into two pipes; its exit code is the engine's once the stream ends.
/// Signals go to its host pid, which the engine reports.
/// </summary>
internal sealed class ContainerGuestProcess : IGuestProcess
{
    private static readonly TimeSpan ExitPatience = TimeSpan.FromSeconds(10);

    private readonly MultiplexedStream _stream;
    private readonly string _execId;
    private readonly Func<string, Task<ContainerExecInspectResponse>> _inspect;
    private readonly Func<string, TerminalSize, Task>? _resize;
    private readonly AnonymousPipeServerStream _output = new(PipeDirection.Out);
    private readonly AnonymousPipeServerStream _errors = new(PipeDirection.Out);
    private readonly CancellationTokenSource _closing = new();
    private int _disposed;

    /// <param name="resize">How its terminal is resized, when it runs on one (its output is then the terminal's, all on stdout).</param>
    public ContainerGuestProcess(MultiplexedStream stream, string execId, Func<string, Task<ContainerExecInspectResponse>> inspect, Func<string, TerminalSize, Task>? resize = null)
    {
        _resize = resize;
        _stream = stream;
        _execId = execId;
        _inspect = inspect;
        StandardOutput = new AnonymousPipeClientStream(PipeDirection.In, _output.ClientSafePipeHandle);
        StandardError = new AnonymousPipeClientStream(PipeDirection.In, _errors.ClientSafePipeHandle);
        StandardInput = new Input(stream);
        Exited = RelayAsync();
    }

    public Stream StandardInput { get; }

    public Stream StandardOutput { get; }

    public Stream StandardError { get; }

    public Task<int> Exited { get; }

    public void Signal(int signal)
    {
        if (Exited.IsCompleted)
        {
            return;
        }

        var pid = (int)_inspect(_execId).GetAwaiter().GetResult().Pid;
        if (pid > 0)
        {
            _ = Native.kill(pid, signal);
        }
    }

    public void Resize(TerminalSize size)
    {
        if (_resize is not null && !Exited.IsCompleted)
        {
            try
            {
                _resize(_execId, size).GetAwaiter().GetResult();
            }
            catch (ContainerEngineException)
            {
                // It ended meanwhile.
            }
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
            await _closing.CancelAsync();
        }

        await Exited.ContinueWith(_ => { }, TaskScheduler.Default);
        _stream.Dispose();
        StandardOutput.Dispose();
        StandardError.Dispose();
        _closing.Dispose();
    }

    private async Task<int> RelayAsync()
    {
        var buffer = new byte[81920];
        try
        {
            while (true)
            {
                var read = await _stream.ReadOutputAsync(buffer, 0, buffer.Length, _closing.Token);
                if (read.EOF)
                {
                    break;
                }

                var target = read.Target == MultiplexedStream.TargetStream.StandardError ? _errors : _output;
                try
                {
                    await target.WriteAsync(buffer.AsMemory(0, read.Count), _closing.Token);
                }
                catch (IOException)
                {
                    // Nobody reads that stream any more: what it writes is dropped, the rest still flows.
                }
            }
        }
        catch (Exception exception) when (exception is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // The engine closed the stream, or the process is being disposed.
        }
        finally
        {
            _output.Dispose();
            _errors.Dispose();
        }

        // The stream ends a moment before the engine records the exit code.
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            try
            {
                var inspection = await _inspect(_execId);
                if (!inspection.Running || waited.Elapsed > ExitPatience)
                {
                    return (int)inspection.ExitCode;
                }
            }
            catch (ContainerEngineException)
            {
                return 137;
            }

            await Task.Delay(10);
        }
    }

    /// <summary>Writes go to the process's stdin; closing it half-closes the attached stream, which the process reads as the end of its input.</summary>
    private sealed class Input(MultiplexedStream stream) : GuestInput
    {
        protected override Task WriteToProcessAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken) =>
            stream.WriteAsync(buffer.ToArray(), 0, buffer.Length, cancellationToken);

        protected override void EndOfInput()
        {
            try
            {
                stream.CloseWrite();
            }
            catch (Exception exception) when (exception is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
            {
                // The process ended already.
            }
        }
    }

    private static class Native
    {
        [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
        public static extern int kill(int pid, int signal);
    }
}
