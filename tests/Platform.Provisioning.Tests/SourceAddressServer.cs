using System.Net;
using System.Net.Sockets;
using System.Text;
using Platform.Provisioning.Drivers.Networking;

namespace Platform.Provisioning.Tests;

/// <summary>
/// A TCP server inside a namespace that answers every connection with the source address it sees and closes it:
/// what a server behind an exit node, or in a machine, learns about who is calling.
/// </summary>
public sealed class SourceAddressServer : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _serving;

    private SourceAddressServer(Socket listener)
    {
        _listener = listener;
        _serving = ServeAsync();
    }

    public static async Task<SourceAddressServer> StartAsync(string networkNamespace, IPAddress address, int port)
    {
        var listener = await NetworkNamespace.Open(networkNamespace).CreateSocketAsync(AddressFamily.InterNetwork);
        try
        {
            listener.Bind(new IPEndPoint(address, port));
            listener.Listen();
            return new SourceAddressServer(listener);
        }
        catch
        {
            listener.Dispose();
            throw;
        }
    }

    /// <summary>What a server says to a connection; throws when the connection cannot be made within two seconds.</summary>
    public static async Task<string> AskAsync(Func<CancellationToken, Task<Socket>> connect)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        using var socket = await connect(timeout.Token);
        using var stream = new NetworkStream(socket);
        using var reader = new StreamReader(stream, Encoding.ASCII);
        return (await reader.ReadLineAsync(timeout.Token))?.Trim() ?? string.Empty;
    }

    /// <summary>Whether a connection can be made within two seconds.</summary>
    public static async Task<bool> ReachableAsync(Func<CancellationToken, Task<Socket>> connect)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            using var socket = await connect(timeout.Token);
            return true;
        }
        catch (Exception exception) when (exception is SocketException or OperationCanceledException or IOException)
        {
            return false;
        }
    }

    /// <summary>A connection from this process's own namespace.</summary>
    public static Func<CancellationToken, Task<Socket>> FromHost(IPAddress address, int port) => async cancellationToken =>
    {
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(new IPEndPoint(address, port), cancellationToken);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    };

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        try
        {
            await _serving;
        }
        catch (Exception exception) when (exception is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        _stop.Dispose();
    }

    private async Task ServeAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            using var client = await _listener.AcceptAsync(_stop.Token);
            try
            {
                var source = ((IPEndPoint)client.RemoteEndPoint!).Address.MapToIPv4();
                await client.SendAsync(Encoding.ASCII.GetBytes(source + "\n"), _stop.Token);
                client.Shutdown(SocketShutdown.Both);
            }
            catch (SocketException)
            {
                // A caller that only checked it could connect has gone already; serve the next.
            }
        }
    }
}
