using MassTransit;
using Platform.Contracts.Networking;
using Platform.Contracts.Provisioning;
using Platform.Contracts.Tenancy;

namespace Platform.Provisioning.Machines.Saga;

/// <summary>
/// One machine's messages one at a time per instance and in the order they arrived (an agent's "launched" before its
/// "exited"), sixteen machines at once; a race between instances is still settled by the saga row's version.
/// </summary>
public sealed class MachineSagaDefinition : SagaDefinition<MachineSagaState>
{
    protected override void ConfigureSaga(IReceiveEndpointConfigurator endpoint, ISagaConfigurator<MachineSagaState> saga, IRegistrationContext context)
    {
        // Each message's activities append to the machine's stream, eight appends of the process at a time: sixteen
        // machines at once keep those turns busy, and more would only wait for them.
        endpoint.PrefetchCount = 32;
        endpoint.ConcurrentMessageLimit = 16;
        var partitioner = endpoint.CreatePartitioner(32);
        void ByMachine<T>(Func<T, Guid> machineId) where T : class => saga.Message<T>(m => m.UsePartitioner(partitioner, c => machineId(c.Message)));

        ByMachine<MachineRequested>(m => m.MachineId);
        ByMachine<MachineDestroyRequested>(m => m.MachineId);
        ByMachine<QuotaReserved>(m => m.MachineId);
        ByMachine<QuotaRejected>(m => m.MachineId);
        ByMachine<QuotaReleased>(m => m.MachineId);
        ByMachine<NetworkAllocated>(m => m.MachineId);
        ByMachine<NetworkAllocationRefused>(m => m.MachineId);
        ByMachine<NetworkReleased>(m => m.MachineId);
        ByMachine<MachineLaunched>(m => m.MachineId);
        ByMachine<MachineLaunchFailed>(m => m.MachineId);
        ByMachine<MachineExited>(m => m.MachineId);
        ByMachine<MachineTornDown>(m => m.MachineId);
        ByMachine<TunnelAttached>(m => m.MachineId);
        ByMachine<TunnelAttachFailed>(m => m.MachineId);
        ByMachine<TunnelDetached>(m => m.MachineId);
        ByMachine<MachineRegistered>(m => m.MachineId);
        ByMachine<MachineUnregistered>(m => m.MachineId);
        ByMachine<MachineStepOverdue>(m => m.MachineId);
    }
}
