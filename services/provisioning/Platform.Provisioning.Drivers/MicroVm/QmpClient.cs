using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Platform.Provisioning.Drivers.MicroVm;

/// <summary>
/// QEMU's machine protocol over its unix socket: JSON objects one per line; a command's answer is the next object
/// holding <c>return</c> or <c>error</c>, with asynchronous <c>event</c>s possibly in between.
/// </summary>
internal sealed class QmpClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly StreamReader _reader;
    private readonly Stream _stream;
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);

    private QmpClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _reader = new StreamReader(_stream, Encoding.UTF8);
    }

    /// <summary>Connects once QEMU has made its socket, and leaves capabilities negotiation mode.</summary>
    public static async Task<QmpClient> ConnectAsync(string path, Task qemuExited, CancellationToken cancellationToken)
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (qemuExited.IsCompleted)
            {
                throw new InvalidOperationException("QEMU exited before its QMP socket answered.");
            }

            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken);
            }
            catch (SocketException)
            {
                // Not listening yet: QEMU makes its sockets while it starts.
                socket.Dispose();
                await Task.Delay(2, cancellationToken);
                continue;
            }

            var client = new QmpClient(socket);
            try
            {
                var greeting = await client.ReadObjectAsync(cancellationToken);
                if (greeting["QMP"] is null)
                {
                    throw new InvalidDataException($"Not a QMP greeting: {greeting.ToJsonString()}");
                }

                await client.ExecuteAsync("qmp_capabilities", null, cancellationToken);
                return client;
            }
            catch
            {
                await client.DisposeAsync();
                throw;
            }
        }
    }

    /// <summary>Runs a command and returns its <c>return</c> value; a QMP <c>error</c> throws.</summary>
    public async Task<JsonNode?> ExecuteAsync(string command, object? arguments, CancellationToken cancellationToken)
    {
        await _oneAtATime.WaitAsync(cancellationToken);
        try
        {
            var request = new JsonObject { ["execute"] = command };
            if (arguments is not null)
            {
                request["arguments"] = JsonSerializer.SerializeToNode(arguments);
            }

            await _stream.WriteAsync(Encoding.UTF8.GetBytes(request.ToJsonString() + "\n"), cancellationToken);
            while (true)
            {
                var answer = await ReadObjectAsync(cancellationToken);
                if (answer.ContainsKey("return"))
                {
                    return answer["return"];
                }

                if (answer["error"] is JsonObject error)
                {
                    throw new InvalidOperationException($"QMP {command} failed: {error["class"]}: {error["desc"]}");
                }
            }
        }
        finally
        {
            _oneAtATime.Release();
        }
    }

    private async Task<JsonObject> ReadObjectAsync(CancellationToken cancellationToken)
    {
        var line = await _reader.ReadLineAsync(cancellationToken)
            ?? throw new IOException("QEMU closed its QMP socket.");
        return JsonNode.Parse(line) as JsonObject ?? throw new InvalidDataException($"Not a QMP object: {line}");
    }

    public ValueTask DisposeAsync()
    {
        _reader.Dispose();
        _socket.Dispose();
        _oneAtATime.Dispose();
        return ValueTask.CompletedTask;
    }
}
