using MassTransit;
using Platform.Contracts.Operations;
using Platform.Contracts.Provisioning;

namespace Platform.HostAgent;

/// <summary>
/// The commands provisioning sends to this host's own queue, and provisioning's start (on this host's own
/// queue too, so that every agent hears it): a provisioning that just started may have missed the last
/// capacity report, so it gets one at once.
/// </summary>
public sealed class HostCommands(HostMachines machines, CapacityReporter reporter) :
    IConsumer<LaunchMachine>, IConsumer<HaltMachine>, IConsumer<TearDownMachine>, IConsumer<ServiceStarted>
{
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
