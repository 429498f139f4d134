using MassTransit;
using Platform.Contracts.Provisioning;
using Platform.Messaging;

namespace Platform.Provisioning.Machines;

/// <summary>One machine's messages are handled one at a time per instance, in order; different machines in parallel.</summary>
public sealed class MachineLifecycleDefinition : ConsumerDefinition<MachineLifecycle>
{
    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<MachineLifecycle> consumer, IRegistrationContext context)
    {
        endpoint.PrefetchCount = 64;
        var partitioner = endpoint.CreatePartitioner(32);
        consumer.Message<MachineStartRequested>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<MachineStopRequested>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<MachinePauseRequested>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<MachineResumeRequested>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<MachineRestartRequested>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<MachineRecreateRequested>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
    }
}

public sealed class HostReportsDefinition : ConsumerDefinition<HostReports>
{
    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<HostReports> consumer, IRegistrationContext context)
    {
        endpoint.PrefetchCount = 64;
        var partitioner = endpoint.CreatePartitioner(32);
        consumer.Message<MachineLaunched>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<MachineLaunchFailed>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<MachineHalted>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<MachineExited>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<MachineFrozen>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<MachineThawed>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<MachineFreezeFailed>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<GuestCommandEnded>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<GuestFileChanged>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
    }
}
