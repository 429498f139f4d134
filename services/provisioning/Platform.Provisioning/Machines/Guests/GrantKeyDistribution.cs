using Platform.Provisioning.Hosts;
using MassTransit;
using Platform.Contracts.Provisioning;

namespace Platform.Provisioning.Machines.Guests;

/// <summary>
/// Tells each host agent, whenever it reports (at its start, at provisioning's, and every report interval), to trust
/// this instance's grant key: an agent always holds the keys of the instances that may forward to it.
/// </summary>
public sealed class GrantKeyDistribution(MachineGrantSigner signer) : IConsumer<HostCapacityReported>
{
    public Task Consume(ConsumeContext<HostCapacityReported> context) =>
        context.SendToHostAsync(context.Message.HostId, signer.TrustFor(context.Message.HostId), context.CancellationToken);
}
