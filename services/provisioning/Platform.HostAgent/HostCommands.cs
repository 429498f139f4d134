using MassTransit;
using Platform.Contracts.Provisioning;

namespace Platform.HostAgent;

/// <summary>The commands provisioning sends to this host's own queue.</summary>
public sealed class HostCommands(HostMachines machines) : IConsumer<LaunchMachine>, IConsumer<HaltMachine>, IConsumer<TearDownMachine>
{
    public Task Consume(ConsumeContext<LaunchMachine> context) => machines.LaunchAsync(context.Message, context.CancellationToken);

    public Task Consume(ConsumeContext<HaltMachine> context) => machines.HaltAsync(context.Message, context.CancellationToken);

    public Task Consume(ConsumeContext<TearDownMachine> context) => machines.TearDownAsync(context.Message, context.CancellationToken);
}

/// <summary>
/// The queue <c>host-agent-{hostId}</c>: one machine's commands one at a time and in order, many machines
/// at once (a micro-VM's cold boot takes seconds; it must not hold up the next sandbox).
/// </summary>
public sealed class HostCommandsDefinition : ConsumerDefinition<HostCommands>
{
    public HostCommandsDefinition(HostIdentity host)
    {
        EndpointName = QueueOf(host.HostId);
        ConcurrentMessageLimit = 32;
    }

    public static string QueueOf(Guid hostId) => $"host-agent-{hostId}";

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<HostCommands> consumer, IRegistrationContext context)
    {
        endpoint.PrefetchCount = 32;
        var partitioner = endpoint.CreatePartitioner(32);
        consumer.Message<LaunchMachine>(m => m.UsePartitioner(partitioner, c => c.Message.MachineId));
        consumer.Message<HaltMachine>(m => m.UsePartitioner(partitioner, c => c.Message.MachineId));
        consumer.Message<TearDownMachine>(m => m.UsePartitioner(partitioner, c => c.Message.MachineId));
    }
}
