using MassTransit;
using Platform.Contracts.Networking;
using Platform.Contracts.Operations;
using Platform.HostAgent.Networking;
using Platform.Contracts.Provisioning;
using Platform.Messaging;

namespace Platform.HostAgent;

/// <summary>
/// The commands provisioning and networking send to this host's own queue, and provisioning's start (on this
/// host's own queue too, so that every agent hears it): a provisioning that just started may have missed the
/// last capacity report, so it gets one at once.
/// </summary>
public sealed class HostCommands(
    HostMachines machines, MachineRecords records, TenantNetworks networks, HostIdentity host, CapacityReporter reporter, Guests.GrantKeys grantKeys, ILogger<HostCommands> logger) :
    IConsumer<LaunchMachine>, IConsumer<HaltMachine>, IConsumer<PauseMachine>, IConsumer<ResumeMachine>, IConsumer<TakeSnapshot>, IConsumer<RemoveSnapshot>, IConsumer<TearDownMachine>, IConsumer<SetUpTunnel>, IConsumer<RemoveTunnel>,
    IConsumer<OpenPortForward>, IConsumer<ClosePortForward>, IConsumer<ServiceStarted>, IConsumer<TrustMachineGrantKey>
{
    public Task Consume(ConsumeContext<TrustMachineGrantKey> context)
    {
        grantKeys.Trust(context.Message);
        return Task.CompletedTask;
    }

    /// <summary>Drivers whose machines sit in their tenant's segment, where a host port can reach them.</summary>
    private static readonly HashSet<string> SegmentDrivers = ["sandbox", "microvm"];

    public Task Consume(ConsumeContext<ServiceStarted> context)
    {
        if (context.Message.Service == "provisioning")
        {
            reporter.ReportNow();
        }

        return Task.CompletedTask;
    }

    public Task Consume(ConsumeContext<LaunchMachine> context) => machines.LaunchAsync(context.Message, context.CancellationToken);

    public Task Consume(ConsumeContext<HaltMachine> context) => machines.HaltAsync(context.Message, context.CancellationToken);

    public Task Consume(ConsumeContext<PauseMachine> context) => machines.PauseAsync(context.Message, context.CancellationToken);

    public Task Consume(ConsumeContext<ResumeMachine> context) => machines.ResumeAsync(context.Message, context.CancellationToken);

    public Task Consume(ConsumeContext<TakeSnapshot> context) => machines.TakeSnapshotAsync(context.Message, context.CancellationToken);

    public Task Consume(ConsumeContext<RemoveSnapshot> context) => machines.RemoveSnapshotAsync(context.Message, context.CancellationToken);

    public Task Consume(ConsumeContext<TearDownMachine> context) => machines.TearDownAsync(context.Message, context.CancellationToken);

    public async Task Consume(ConsumeContext<SetUpTunnel> context)
    {
        var command = context.Message;
        try
        {
            var (publicKey, implementation) = await networks.SetUpTunnelAsync(command);
            await context.Publish(new TunnelSetUp(command.MachineId, command.TenantId, host.HostId, publicKey, implementation));
        }
        catch (Exception failed) when (failed is IOException or ArgumentException or FormatException)
        {
            logger.LogWarning(failed, "The tunnel of machine {MachineId} could not be set up", command.MachineId);
            await networks.RemoveTunnelAsync(command.MachineId);
            await context.Publish(new TunnelSetUpFailed(command.MachineId, command.TenantId, host.HostId, failed.Message));
        }
    }

    public async Task Consume(ConsumeContext<RemoveTunnel> context)
    {
        await networks.RemoveTunnelAsync(context.Message.MachineId);
        await context.Publish(new TunnelRemoved(context.Message.MachineId, context.Message.TenantId, host.HostId));
    }

    public async Task Consume(ConsumeContext<OpenPortForward> context)
    {
        var command = context.Message;
        // A machine torn down (or never here) has no address to forward to: opening would leave a forward nothing closes.
        var refusal = records.Find(command.MachineId) switch
        {
            null => $"machine {command.MachineId} is not on host {host.Name}",
            { Launch.TenantId: var tenantId } when tenantId != command.TenantId => $"machine {command.MachineId} is not on host {host.Name}",
            { Launch.Driver: var driver } when !SegmentDrivers.Contains(driver) => $"a {driver} machine is not in its tenant's network on the host",
            _ => null,
        };
        if (refusal is not null)
        {
            await context.Publish(new PortForwardFailed(command.ForwardId, command.MachineId, command.TenantId, host.HostId, refusal));
            return;
        }

        try
        {
            var hostPort = await networks.OpenPortForwardAsync(command);
            await context.Publish(new PortForwardOpened(command.ForwardId, command.MachineId, command.TenantId, host.HostId, hostPort, networks.ForwardAddress));
        }
        catch (Exception failed) when (failed is InvalidOperationException or IOException or ArgumentException or FormatException)
        {
            // The driver leaves nothing behind on failure; "no port free" is the usual reason.
            logger.LogWarning(failed, "Port {Port} of machine {MachineId} could not be forwarded", command.Port, command.MachineId);
            await context.Publish(new PortForwardFailed(command.ForwardId, command.MachineId, command.TenantId, host.HostId, failed.Message));
        }
    }

    public async Task Consume(ConsumeContext<ClosePortForward> context)
    {
        await networks.ClosePortForwardAsync(context.Message.ForwardId, context.Message.TenantId);
        await context.Publish(new PortForwardClosed(context.Message.ForwardId, context.Message.MachineId, context.Message.TenantId, host.HostId));
    }
}

/// <summary>
/// The queue <c>host-agent-{hostId}</c>: one machine's commands one at a time and in order, many machines
/// at once (a micro-VM's cold boot takes seconds; it must not hold up the next sandbox).
/// </summary>
public sealed class HostCommandsDefinition : ConsumerDefinition<HostCommands>
{
    public HostCommandsDefinition(HostIdentity host)
    {
        EndpointName = HostAgentQueue.NameOf(host.HostId);
        ConcurrentMessageLimit = 32;
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<HostCommands> consumer, IRegistrationContext context)
    {
        endpoint.PrefetchCount = 32;
        var partitioner = endpoint.CreatePartitioner(32);
        consumer.Message<LaunchMachine>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<HaltMachine>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<PauseMachine>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<ResumeMachine>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<TakeSnapshot>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<RemoveSnapshot>(m => m.UsePartitionInOrder(partitioner, c => c.Message.SnapshotId));
        consumer.Message<TearDownMachine>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<SetUpTunnel>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<RemoveTunnel>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<OpenPortForward>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<ClosePortForward>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
    }
}
