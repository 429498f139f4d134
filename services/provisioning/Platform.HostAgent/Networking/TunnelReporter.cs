using MassTransit;
using Platform.Contracts.Networking;

namespace Platform.HostAgent.Networking;

/// <summary>Reports the latest handshake of every tunnel on this host, at the agent's report interval, while there are tunnels.</summary>
public sealed class TunnelReporter(TenantNetworks networks, HostIdentity host, AgentOptions options, IBus bus, TimeProvider time, ILogger<TunnelReporter> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.ReportInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                var handshakes = await networks.HandshakesAsync();
                if (handshakes.Count > 0)
                {
                    await bus.Publish(new TunnelHandshakesReported(host.HostId, handshakes, time.GetUtcNow()), stoppingToken);
                }
            }
            catch (Exception exception) when (!stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning(exception, "Could not report the tunnels' handshakes");
            }
        }
    }
}
