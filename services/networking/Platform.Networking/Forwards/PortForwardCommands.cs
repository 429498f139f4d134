using MassTransit;
using Platform.Contracts.Networking;
using Platform.EventSourcing;
using Platform.Hosting.Problems;
using Platform.Networking.Addressing;
using Platform.Messaging;

namespace Platform.Networking.Forwards;

/// <summary>
/// Port forwards on the bus: other services' commands, and the host agents' reports. Every command is idempotent by
/// forward id; a report that comes after the forward moved on (opened after it was removed) is made good on the host.
/// </summary>
public sealed class PortForwardCommands(EventStore store, PortForwarding forwarding, MachineCopies machines, TimeProvider time, ILogger<PortForwardCommands> logger) :
    IConsumer<ForwardPort>, IConsumer<RemovePortForward>, IConsumer<RemovePortForwardsOf>,
    IConsumer<PortForwardOpened>, IConsumer<PortForwardFailed>, IConsumer<PortForwardClosed>
{
    public async Task Consume(ConsumeContext<ForwardPort> context)
    {
        var command = context.Message;
        var machine = await machines.FindAsync(command.MachineId, command.TenantId, context.CancellationToken);
        var (forward, refusal) = await forwarding.RequestAsync(command, machine, context, Metadata(context, command.TenantId), context.CancellationToken);
        if (refusal is not null)
        {
            await context.Publish(new PortForwardRefused(command.ForwardId, command.MachineId, command.TenantId, refusal.ProblemType, refusal.Reason));
        }
        else if (forward is { State: PortForwardStates.Open, HostPort: { } hostPort })
        {
            // Asked again once open: answer again.
            await context.Publish(new PortForwarded(forward.ForwardId, forward.MachineId, forward.TenantId, forward.HostId, forward.Port, hostPort, forward.HostAddress!, time.GetUtcNow()));
        }
    }

    public async Task Consume(ConsumeContext<RemovePortForward> context)
    {
        var command = context.Message;
        var forward = await forwarding.RemoveAsync(command.ForwardId, command.TenantId, context, Metadata(context, command.TenantId), context.CancellationToken);
        if (forward is null)
        {
            // Never asked for: recorded, so that a late request makes nothing, and answered.
            var removed = new PortForwardRemoved(command.ForwardId, Guid.Empty, command.TenantId, Guid.Empty, 0, null, "there was no such forward", time.GetUtcNow());
            try
            {
                await store.AppendAsync(MachinePortForward.StreamOf(command.ForwardId), ExpectedVersion.NoStream, [removed], Metadata(context, command.TenantId), context.CancellationToken);
            }
            catch (WrongExpectedVersionException)
            {
                // Another tenant's forward, or a request that came first: neither is this command's to touch.
                await context.Publish(removed);
            }
        }
        else if (forward.State == PortForwardStates.Removed)
        {
            await context.Publish(forward.Removed(null, time.GetUtcNow()));
        }
    }

    public async Task Consume(ConsumeContext<RemovePortForwardsOf> context)
    {
        var command = context.Message;
        foreach (var forwardId in await forwarding.ForwardsOfAsync(command.MachineId, context.CancellationToken))
        {
            await forwarding.RemoveAsync(forwardId, command.TenantId, context, Metadata(context, command.TenantId), context.CancellationToken);
        }
    }

    public async Task Consume(ConsumeContext<PortForwardOpened> context)
    {
        var report = context.Message;
        var (forward, decided) = await DecideAsync(context, report.ForwardId, report.TenantId, f => MachinePortForward.Decide(f, report, time.GetUtcNow()));
        if (decided.Count > 0)
        {
            logger.LogInformation("Port {Port} of machine {MachineId} forwarded from {HostAddress}:{HostPort}", forward!.Port, forward.MachineId, report.HostAddress, report.HostPort);
        }
        else if (forward is null or { State: PortForwardStates.Closing or PortForwardStates.Removed or PortForwardStates.Failed })
        {
            // Opened after it was removed (a late copy of the command): close it again.
            await PortForwarding.CloseOnHostAsync(context, report.HostId, new ClosePortForward(report.ForwardId, report.MachineId, report.TenantId), context.CancellationToken);
        }
    }

    public async Task Consume(ConsumeContext<PortForwardFailed> context)
    {
        var report = context.Message;
        var (forward, decided) = await DecideAsync(context, report.ForwardId, report.TenantId, f => MachinePortForward.Decide(f, report, time.GetUtcNow()));
        if (decided.OfType<PortForwardAbandoned>().Any())
        {
            logger.LogWarning("Port {Port} of machine {MachineId} could not be forwarded: {Reason}", forward!.Port, forward.MachineId, report.Reason);
            await context.Publish(new PortForwardRefused(forward.ForwardId, forward.MachineId, forward.TenantId, ProblemTypes.Conflict,
                $"the host could not open the forward: {report.Reason}"));
        }
    }

    public Task Consume(ConsumeContext<PortForwardClosed> context) =>
        DecideAsync(context, context.Message.ForwardId, context.Message.TenantId, f => MachinePortForward.Decide(f, context.Message, time.GetUtcNow()));

    /// <summary>Decides on the forward as it is and appends what was decided, deciding again on a lost race. Returns the forward the decision was made on.</summary>
    private async Task<(MachinePortForward? Forward, IReadOnlyList<object> Decided)> DecideAsync(
        ConsumeContext context, Guid forwardId, Guid tenantId, Func<MachinePortForward?, IReadOnlyList<object>> decide)
    {
        MachinePortForward? decidedOn = null;
        var decided = await store.DecideAsync<MachinePortForward>(MachinePortForward.StreamOf(forwardId), MachinePortForward.Evolve, forward =>
        {
            decidedOn = forward;
            return decide(forward);
        }, Metadata(context, tenantId), context.CancellationToken);
        return (decidedOn, decided);
    }

    private static EventMetadata Metadata(ConsumeContext context, Guid tenantId) => AddressingMetadata.Of(context, tenantId);
}

/// <summary>One forward's commands and reports one at a time per instance, in order.</summary>
public sealed class PortForwardCommandsDefinition : ConsumerDefinition<PortForwardCommands>
{
    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<PortForwardCommands> consumer, IRegistrationContext context)
    {
        var partitioner = endpoint.CreatePartitioner(16);
        consumer.Message<ForwardPort>(m => m.UsePartitionInOrder(partitioner, c => c.Message.ForwardId));
        consumer.Message<RemovePortForward>(m => m.UsePartitionInOrder(partitioner, c => c.Message.ForwardId));
        consumer.Message<RemovePortForwardsOf>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<PortForwardOpened>(m => m.UsePartitionInOrder(partitioner, c => c.Message.ForwardId));
        consumer.Message<PortForwardFailed>(m => m.UsePartitionInOrder(partitioner, c => c.Message.ForwardId));
        consumer.Message<PortForwardClosed>(m => m.UsePartitionInOrder(partitioner, c => c.Message.ForwardId));
    }
}
