using System.Net.Sockets;
using System.Text;

namespace Platform.Provisioning.Drivers.MicroVm;

/// <summary>
/// The host's end of a guest's serial console: QEMU's chardev socket, which also logs everything the guest prints
/// to the serial log. Held only while the driver talks to the guest: a connected reader that stopped reading would
/// stall the guest's output, while with nobody connected QEMU just drops it (after logging it).
/// </summary>
internal sealed class SerialConsole : IDisposable
{
    private readonly Socket _socket;
    private readonly StreamReader _reader;
    private readonly string _logPath;

    private SerialConsole(Socket socket, string logPath)
    {
        _socket = socket;
        _reader = new StreamReader(new NetworkStream(socket, ownsSocket: false), Encoding.UTF8);
        _logPath = logPath;
    }

    /// <summary>Connects once QEMU has made the socket; throws if QEMU exits first.</summary>
    public static async Task<SerialConsole> ConnectAsync(string socketPath, string logPath, Task qemuExited, CancellationToken cancellationToken)
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (qemuExited.IsCompleted)
            {
                throw new InvalidOperationException("QEMU exited before its serial console socket answered.");
            }

            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
                return new SerialConsole(socket, logPath);
            }
            catch (SocketException)
            {
                socket.Dispose();
                await Task.Delay(2, cancellationToken);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
    }

    public Task WriteLineAsync(string line, CancellationToken cancellationToken) =>
        _socket.SendAsync(Encoding.UTF8.GetBytes(line + "\n"), cancellationToken).AsTask();

    /// <summary>
    /// Waits until the guest prints <paramref name="expected"/> as a whole line. What it printed before this end was
    /// connected is only in the log, so that is looked at first.
    /// </summary>
    public async Task WaitForLineAsync(string expected, CancellationToken cancellationToken)
    {
        if (LogHasLine(expected))
        {
            return;
        }

        while (true)
        {
            var line = await _reader.ReadLineAsync(cancellationToken)
                ?? throw new IOException($"The serial console closed before the guest printed '{expected}'.");
            if (line.TrimEnd('\r') == expected)
            {
                return;
            }
        }
    }

    private bool LogHasLine(string expected)
    {
        try
        {
            using var log = new FileStream(_logPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(log, Encoding.UTF8);
            while (reader.ReadLine() is { } line)
            {
                if (line.TrimEnd('\r') == expected)
                {
                    return true;
                }
            }
        }
        catch (FileNotFoundException)
        {
            // QEMU opens the log when the guest first prints.
        }

        return false;
    }

    /// <summary>The last lines of a serial log, for error messages: what the guest said before things went wrong.</summary>
    public static string Tail(string logPath, int maxBytes = 2048)
    {
        try
        {
            using var log = new FileStream(logPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            log.Seek(Math.Max(0, log.Length - maxBytes), SeekOrigin.Begin);
            using var reader = new StreamReader(log, Encoding.UTF8);
            return reader.ReadToEnd().Replace("\r", "", StringComparison.Ordinal).Trim();
        }
        catch (Exception exception) when (exception is FileNotFoundException or DirectoryNotFoundException)
        {
            return "";
        }
    }

    public void Dispose()
    {
        _reader.Dispose();
        _socket.Dispose();
    }
}
