using System.Net.WebSockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace Platform.Cli;

public sealed partial class Plat
{
    /// <summary>
    /// <c>exec -t</c>: the command starts in the background on a terminal of the size of this one, and plat attaches to it
    /// (<see cref="AttachAsync"/>). Without a terminal here, the size is 80 by 24.
    /// </summary>
    private async Task<int> OnTerminalAsync(GatewayClient client, Guid machine, Dictionary<string, object?> body, CancellationToken cancellationToken)
    {
        var (columns, rows) = OnTerminal ? (Console.WindowWidth, Console.WindowHeight) : (80, 24);
        body["tty"] = true;
        body["columns"] = Math.Clamp(columns, 1, 1000);
        body["rows"] = Math.Clamp(rows, 1, 1000);
        body["background"] = true;
        var started = await client.PostAsync($"api/v1/machines/{machine}/exec", body, cancellationToken);
        return await AttachAsync(client, machine, started.GetProperty("processId").GetGuid(), cancellationToken);
    }

    /// <summary>Whether plat runs on a terminal (its own input and output are one).</summary>
    private bool OnTerminal => ReferenceEquals(input, Console.In) && !Console.IsInputRedirected && !Console.IsOutputRedirected;

    /// <summary>
    /// Attaches to a process over the API's WebSocket (<c>…/processes/{id}/attach</c>): what is typed goes in as it is
    /// typed (this terminal in raw mode, restored after), what it shows comes out from its beginning, a resize of this
    /// terminal resizes its, and plat exits with its exit code. Without a terminal here, plat's input is sent as typed text.
    /// </summary>
    private async Task<int> AttachAsync(GatewayClient client, Guid machine, Guid process, CancellationToken cancellationToken)
    {
        var onTerminal = OnTerminal;
        using var socket = await client.ConnectWebSocketAsync($"api/v1/machines/{machine}/processes/{process}/attach", cancellationToken);
        using var leaving = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var saved = onTerminal ? RawTerminal.Enter() : null;
        using var resized = onTerminal && !OperatingSystem.IsWindows()
            ? PosixSignalRegistration.Create(PosixSignal.SIGWINCH, signal =>
            {
                _ = SendTextAsync(socket, JsonSerializer.Serialize(new { type = "resize", columns = Console.WindowWidth, rows = Console.WindowHeight }), leaving.Token);
            })
            : null;
        try
        {
            var typing = onTerminal ? TypeFromTerminalAsync(socket, leaving.Token) : TypeFromInputAsync(socket, leaving.Token);
            var exitCode = await ShowAsync(socket, onTerminal, cancellationToken);
            await leaving.CancelAsync();
            // A read of the terminal waits for a key that may never come: it is left behind, and ends with plat.
            if (!onTerminal)
            {
                await typing.ContinueWith(_ => { }, TaskScheduler.Default);
            }

            return exitCode;
        }
        finally
        {
            saved?.Dispose();
        }
    }

    /// <summary>What the process shows, until its exit message: its exit code (1 when the connection ended without one).</summary>
    private async Task<int> ShowAsync(ClientWebSocket socket, bool onTerminal, CancellationToken cancellationToken)
    {
        await using var raw = onTerminal ? Descriptor(1, FileAccess.Write) : null;
        var decoder = Encoding.UTF8.GetDecoder();
        var buffer = new byte[64 * 1024];
        var text = new MemoryStream();
        while (socket.State == WebSocketState.Open)
        {
            var received = await socket.ReceiveAsync(buffer, cancellationToken);
            if (received.MessageType == WebSocketMessageType.Close)
            {
                break;
            }

            if (received.MessageType == WebSocketMessageType.Binary)
            {
                if (raw is not null)
                {
                    await raw.WriteAsync(buffer.AsMemory(0, received.Count), cancellationToken);
                    await raw.FlushAsync(cancellationToken);
                }
                else
                {
                    var characters = new char[Encoding.UTF8.GetMaxCharCount(received.Count)];
                    await output.WriteAsync(characters.AsMemory(0, decoder.GetChars(buffer, 0, received.Count, characters, 0)), cancellationToken);
                }

                continue;
            }

            text.Write(buffer, 0, received.Count);
            if (!received.EndOfMessage)
            {
                continue;
            }

            var control = JsonDocument.Parse(text.ToArray()).RootElement;
            text.SetLength(0);
            if (Text(control, "type") == "exit")
            {
                await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
                return control.TryGetProperty("exitCode", out var code) && code.ValueKind == JsonValueKind.Number ? code.GetInt32() : ExitCodes.Failed;
            }
        }

        return ExitCodes.Failed;
    }

    /// <summary>This terminal's bytes, as they are typed (raw mode: Ctrl-C too goes to the command).</summary>
    private static async Task TypeFromTerminalAsync(ClientWebSocket socket, CancellationToken cancellationToken)
    {
        await using var keys = Descriptor(0, FileAccess.Read);
        var buffer = new byte[4096];
        int read;
        while ((read = await keys.ReadAsync(buffer, cancellationToken)) > 0)
        {
            await socket.SendAsync(buffer.AsMemory(0, read), WebSocketMessageType.Binary, endOfMessage: true, cancellationToken);
        }
    }

    /// <summary>plat's input, as if typed: all of it, then nothing more (a terminal's input has no end).</summary>
    private async Task TypeFromInputAsync(ClientWebSocket socket, CancellationToken cancellationToken)
    {
        var buffer = new char[4096];
        int read;
        while ((read = await input.ReadAsync(buffer, cancellationToken)) > 0)
        {
            await socket.SendAsync(Encoding.UTF8.GetBytes(buffer, 0, read), WebSocketMessageType.Binary, endOfMessage: true, cancellationToken);
        }
    }

    /// <summary>
    /// A standard stream as the plain file descriptor it is: .NET's console streams edit and echo a terminal's input
    /// line by line themselves, and put the terminal's settings back as they go.
    /// </summary>
    private static FileStream Descriptor(int descriptor, FileAccess access) =>
        new(new Microsoft.Win32.SafeHandles.SafeFileHandle(descriptor, ownsHandle: false), access, bufferSize: 0);

    private static async Task SendTextAsync(ClientWebSocket socket, string text, CancellationToken cancellationToken)
    {
        try
        {
            await socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, endOfMessage: true, cancellationToken);
        }
        catch (Exception gone) when (gone is WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The process ended meanwhile.
        }
    }

    /// <summary>
    /// This terminal in raw mode (no echo, no line editing, Ctrl-C a byte like any other) until disposed, which puts its
    /// settings back. Set with tcsetattr, not stty: .NET puts the terminal's settings back whenever a child process it
    /// started ends, which would undo a child stty's change at once.
    /// </summary>
    private sealed class RawTerminal : IDisposable
    {
        private const int StandardInput = 0;
        private const int SetNow = 0;

        // struct termios is 60 bytes on Linux and 72 on macOS: opaque here, and cfmakeraw knows its fields.
        private readonly byte[] _saved = new byte[256];

        private RawTerminal()
        {
        }

        public static RawTerminal? Enter()
        {
            var terminal = new RawTerminal();
            if (tcgetattr(StandardInput, terminal._saved) != 0)
            {
                return null;
            }

            var raw = (byte[])terminal._saved.Clone();
            cfmakeraw(raw);
            return tcsetattr(StandardInput, SetNow, raw) == 0 ? terminal : null;
        }

        public void Dispose() => _ = tcsetattr(StandardInput, SetNow, _saved);

        [DllImport("libc", SetLastError = true)]
        private static extern int tcgetattr(int descriptor, byte[] settings);

        [DllImport("libc", SetLastError = true)]
        private static extern int tcsetattr(int descriptor, int when, byte[] settings);

        [DllImport("libc")]
        private static extern void cfmakeraw(byte[] settings);
    }
}
