using System.Net.Sockets;

namespace Platform.HostAgent.Telemetry;

/// <summary>A running machine the agent can check: reached from where its own network is, and perhaps with a check of its driver's own.</summary>
public interface IProbedMachine
{
    /// <summary>A TCP connection to <paramref name="port"/> of the machine, opened from inside its network namespace.</summary>
    Task<Socket> ConnectAsync(int port, CancellationToken cancellationToken);

    /// <summary>
    /// The check every machine of the driver gets without declaring it (a micro-VM's guest agent heartbeat): null
    /// when it answers, else why not. Null when the driver has none.
    /// </summary>
    Func<CancellationToken, Task<string?>>? Heartbeat { get; }
}
