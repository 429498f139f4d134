using System.Net.Sockets;
using Platform.Contracts.Provisioning;

namespace Platform.HostAgent.Telemetry;

/// <summary>One check of a running machine, run every <see cref="Interval"/>: null when it passes, else why not.</summary>
public sealed record MachineCheck(string Name, TimeSpan Interval, Func<CancellationToken, Task<string?>> RunAsync);

/// <summary>The checks a machine gets: its driver's heartbeat, and the probe declared when it was created.</summary>
public static class MachineChecks
{
    public const string Heartbeat = "heartbeat";

    public static IReadOnlyList<MachineCheck> For(LaunchMachine launch, IProbedMachine machine, TimeSpan heartbeatInterval)
    {
        var checks = new List<MachineCheck>();
        if (machine.Heartbeat is { } heartbeat)
        {
            checks.Add(new MachineCheck(Heartbeat, launch.Probe?.Interval ?? heartbeatInterval, heartbeat));
        }

        if (launch.Probe is { Tcp: { } port } tcp)
        {
            checks.Add(new MachineCheck($"tcp:{port}", tcp.Interval, token => TcpAsync(machine, port, token)));
        }
        else if (launch.Probe is { Http: { } http } probe)
        {
            checks.Add(new MachineCheck($"http:{http.Port}{http.Path}", probe.Interval, token => HttpAsync(machine, http, token)));
        }

        return checks;
    }

    private static async Task<string?> TcpAsync(IProbedMachine machine, int port, CancellationToken cancellationToken)
    {
        using var socket = await machine.ConnectAsync(port, cancellationToken);
        return null;
    }

    /// <summary>A GET over a connection opened inside the machine's network; 2xx and 3xx pass.</summary>
    private static async Task<string?> HttpAsync(IProbedMachine machine, HttpProbe probe, CancellationToken cancellationToken)
    {
        using var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            UseProxy = false,
            ConnectCallback = async (_, token) => new NetworkStream(await machine.ConnectAsync(probe.Port, token), ownsSocket: true),
        };
        using var client = new HttpClient(handler);
        using var response = await client.GetAsync(new Uri($"http://localhost:{probe.Port}{probe.Path}"), HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        var status = (int)response.StatusCode;
        return status is >= 200 and < 400 ? null : $"GET {probe.Path} answered {status}";
    }
}
