using MassTransit;
using Platform.Contracts.Provisioning;

namespace Platform.Provisioning.Hosts;

public static class HostAgentSend
{
    /// <summary>Sends <paramref name="command"/> to the agent of <paramref name="hostId"/>, on its own queue.</summary>
    public static async Task SendToHostAsync<T>(this ISendEndpointProvider sender, Guid hostId, T command, CancellationToken cancellationToken) where T : class
    {
        var endpoint = await sender.GetSendEndpoint(HostAgentQueue.AddressOf(hostId));
        await endpoint.Send(command, cancellationToken);
    }
}
