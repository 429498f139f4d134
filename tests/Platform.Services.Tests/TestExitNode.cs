using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Platform.Provisioning.Drivers.Networking;

namespace Platform.Services.Tests;

/// <summary>
/// An exit node as a test plays it: a namespace (<c>pmt-exit-…</c>) reached from the host over a veth, running its own
/// wireguard-go on port 51820 with the first address of the default peer range, and behind it a server on
/// 198.51.100.10:8080 that answers every connection with the source address it sees. Machines' peers are added as the
/// platform announces their tunnels, as an exit node's operator would. Everything goes on dispose.
/// </summary>
public sealed class TestExitNode : IAsyncDisposable
{
    public static readonly IPEndPoint Server = new(IPAddress.Parse("198.51.100.10"), 8080);
    private readonly string _run = Guid.NewGuid().ToString("N")[..6];
    private readonly CancellationTokenSource _stop = new();
    private Socket? _listener;
    private Task? _serving;

    public string Namespace => $"pmt-exit-{_run}";

    public string Interface => $"pmtwgx{_run}";

    private string HostEnd => $"pmt-ul{_run}";

    public string PublicKey { get; private set; } = "";

    public IPEndPoint WireGuardEndpoint { get; private set; } = null!;

    /// <summary>What the platform's API takes to register this node.</summary>
    public object Registration(string name) => new
    {
        name,
        endpoint = WireGuardEndpoint.ToString(),
        publicKey = PublicKey,
        allowedIps = new[] { "198.51.100.0/24" },
        region = "test-lab",
    };

    /// <summary>Registers this node as the caller's own through the API and returns its id.</summary>
    public async Task<Guid> RegisterAsync(HttpClient caller, string name)
    {
        var registered = await caller.PostAsJsonAsync("/api/v1/exit-nodes", Registration(name));
        Assert.Equal(HttpStatusCode.Created, registered.StatusCode);
        return (await registered.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
    }

    public static async Task<TestExitNode> StartAsync()
    {
        var node = new TestExitNode();
        try
        {
            await node.SetUpAsync();
            return node;
        }
        catch
        {
            await node.DisposeAsync();
            throw;
        }
    }

    /// <summary>Admits a machine's tunnel: its public key, from its tunnel address.</summary>
    public Task AdmitAsync(string publicKey, string tunnelAddress) =>
        RunAsync("ip", "netns", "exec", Namespace, "wg", "set", Interface, "peer", publicKey, "allowed-ips", $"{tunnelAddress}/32");

    /// <summary>The source addresses the server behind the node has seen, in order.</summary>
    public List<string> Callers { get; } = [];

    private async Task SetUpAsync()
    {
        await IpCommand.RunAsync("netns", "add", Namespace);
        var block = Random.Shared.Next(0, 64) * 4;
        var prefix = $"10.204.{Random.Shared.Next(0, 256)}.";
        await IpCommand.RunAsync("link", "add", HostEnd, "type", "veth", "peer", "name", "eth0", "netns", Namespace);
        await IpCommand.RunAsync("address", "add", $"{prefix}{block + 1}/30", "dev", HostEnd);
        await IpCommand.RunAsync("link", "set", HostEnd, "up");
        await IpCommand.RunAsync("-n", Namespace, "address", "add", $"{prefix}{block + 2}/30", "dev", "eth0");
        await IpCommand.RunAsync("-n", Namespace, "link", "set", "eth0", "up");
        await IpCommand.RunAsync("-n", Namespace, "link", "set", "lo", "up");

        await WireGuardInterface.CreateAsync(Interface, Namespace);
        using var key = WireGuardPrivateKey.Generate();
        using var placeholder = WireGuardPrivateKey.Generate();
        // wg needs a peer to configure the interface with; machines' peers are added as their tunnels appear.
        await WireGuardInterface.ConfigureAsync(Interface, key, new WireGuardPeer(await placeholder.PublicKeyAsync(), null, [IPNetwork.Parse("100.64.255.254/32")]), 51820, Namespace);
        await IpCommand.RunAsync("-n", Namespace, "address", "add", "100.64.0.1/16", "dev", Interface);
        await IpCommand.RunAsync("-n", Namespace, "link", "set", Interface, "up");
        PublicKey = await key.PublicKeyAsync();
        WireGuardEndpoint = new IPEndPoint(IPAddress.Parse($"{prefix}{block + 2}"), 51820);

        await IpCommand.RunAsync("-n", Namespace, "address", "add", Server.Address + "/32", "dev", "lo");
        _listener = await NetworkNamespace.Open(Namespace).CreateSocketAsync(AddressFamily.InterNetwork);
        _listener.Bind(Server);
        _listener.Listen();
        _serving = ServeAsync(_listener);
    }

    private async Task ServeAsync(Socket listener)
    {
        while (!_stop.IsCancellationRequested)
        {
            using var connection = await listener.AcceptAsync(_stop.Token);
            var caller = ((IPEndPoint)connection.RemoteEndPoint!).Address.ToString();
            lock (Callers)
            {
                Callers.Add(caller);
            }

            await connection.SendAsync(Encoding.ASCII.GetBytes(caller + "\n"), _stop.Token);
            connection.Shutdown(SocketShutdown.Both);
        }
    }

    private static async Task RunAsync(params string[] command)
    {
        using var process = Process.Start(new ProcessStartInfo(command[0], command[1..]) { RedirectStandardError = true })!;
        var errors = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"{string.Join(' ', command)} failed: {errors}");
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener?.Dispose();
        try
        {
            if (_serving is not null)
            {
                await _serving;
            }
        }
        catch (Exception exception) when (exception is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopped.
        }

        // Before the namespace goes: wireguard-go's socket in it would keep it (and the daemon) alive, unnamed.
        await WireGuardInterface.DeleteAsync(Interface, Namespace);
        await NetworkNamespace.DeleteAsync(Namespace);
        await IpCommand.TryRunAsync("link", "delete", HostEnd);
    }
}
