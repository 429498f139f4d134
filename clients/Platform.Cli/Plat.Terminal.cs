using System.Diagnostics;
using System.Net.WebSockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace Platform.Cli;

public sealed partial class Plat
{
    /// <summary>
    /// <c>exec -t</c>: the command starts in the background on a terminal of the size of this one, and plat attaches to it
    /// over the API's WebSocket (<c>…/processes/{id}/attach</c>): what is typed goes in as it is typed (this terminal in
    /// raw mode, restored after), what it shows comes out, a resize of this terminal resizes its, and plat exits with its
    /// exit code. Without a terminal here, plat's input is sent as typed text and the size is 80 by 24.
    /// </summary>
    private async Task<int> OnTerminalAsync(GatewayClient client, Guid machine, Dictionary<string, object?> body, CancellationToken cancellationToken)
    {
        var onTerminal = ReferenceEquals(input, Console.In) && !Console.IsInputRedirected && !Console.IsOutputRedirected;
        var (columns, rows) = onTerminal ? (Console.WindowWidth, Console.WindowHeight) : (80, 24);
        body["tty"] = true;
        body["columns"] = Math.Clamp(columns, 1, 1000);
        body["rows"] = Math.Clamp(rows, 1, 1000);
        body["background"] = true;
        var started = await client.PostAsync($"api/v1/machines/{machine}/exec", body, cancellationToken);
        var process = started.GetProperty("processId").GetGuid();

        using var socket = await client.ConnectWebSocketAsync($"api/v1/machines/{machine}/processes/{process}/attach", cancellationToken);
        using var leaving = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var saved = onTerminal ? Stty("-g") : null;
        using var resized = onTerminal && !OperatingSystem.IsWindows()
            ? PosixSignalRegistration.Create(PosixSignal.SIGWINCH, signal =>
            {
                _ = SendTextAsync(socket, JsonSerializer.Serialize(new { type = "resize", columns = Console.WindowWidth, rows = Console.WindowHeight }), leaving.Token);
            })
            : null;
        try
        {
            if (saved is not null)
            {
                Stty("raw", "-echo");
            }

            var typing = onTerminal ? TypeFromTerminalAsync(socket, leaving.Token) : TypeFromInputAsync(socket, leaving.Token);
            var exitCode = await ShowAsync(socket, onTerminal, cancellationToken);
            await leaving.CancelAsync();
            await typing.ContinueWith(_ => { }, TaskScheduler.Default);
            return exitCode;
        }
        finally
        {
            if (saved is not null)
            {
                Stty(saved);
            }
        }
    }

    /// <summary>What the process shows, until its exit message: its exit code (1 when the connection ended without one).</summary>
    private async Task<int> ShowAsync(ClientWebSocket socket, bool onTerminal, CancellationToken cancellationToken)
    {
        await using var raw = onTerminal ? Console.OpenStandardOutput() : null;
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
        await using var keys = Console.OpenStandardInput();
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

    /// <summary>Runs stty on this terminal; answers what it printed (its settings, for <c>-g</c>).</summary>
    private static string Stty(params string[] arguments)
    {
        var start = new ProcessStartInfo("stty") { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var stty = Process.Start(start) ?? throw new CliException(ExitCodes.Failed, "stty did not start.");
        var printed = stty.StandardOutput.ReadToEnd().Trim();
        stty.WaitForExit();
        return printed;
    }
}
