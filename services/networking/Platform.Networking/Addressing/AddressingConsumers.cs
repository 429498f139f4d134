using MassTransit;
using Platform.Contracts.Networking;
using Platform.EventSourcing;
using Platform.Messaging;

namespace Platform.Networking.Addressing;

/// <summary>
/// Allocates on command. A new lease is recorded and the relay announces it; a machine that has one
/// already gets it announced again (the command came twice); a refusal is answered, nothing changes.
/// </summary>
public sealed class AllocateNetworkConsumer(AddressAllocation allocation) : IConsumer<AllocateNetwork>
{
    public async Task Consume(ConsumeContext<AllocateNetwork> context)
    {
        var result = await allocation.AllocateAsync(context.Message, AddressingMetadata.Of(context, context.Message.TenantId), context.CancellationToken);
        if (result.Refusal is { } refusal)
        {
            await context.Publish(refusal);
        }
        else if (!result.IsNew)
        {
            await context.Publish(result.Lease!);
        }
    }
}

public sealed class ReleaseNetworkConsumer(AddressAllocation allocation) : IConsumer<ReleaseNetwork>
{
    public async Task Consume(ConsumeContext<ReleaseNetwork> context)
    {
        var command = context.Message;
        if (await allocation.ReleaseAsync(command, AddressingMetadata.Of(context, command.TenantId), context.CancellationToken) is { } already)
        {
            // Released already (or never leased): say so again, so whoever asked twice hears back.
            await context.Publish(already);
        }
    }
}

/// <summary>One tenant's addressing commands one at a time per instance: they contend for one subnet stream.</summary>
public sealed class AllocateNetworkConsumerDefinition : ConsumerDefinition<AllocateNetworkConsumer>
{
    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<AllocateNetworkConsumer> consumer, IRegistrationContext context)
    {
        var partitioner = endpoint.CreatePartitioner(16);
        consumer.Message<AllocateNetwork>(m => m.UsePartitionInOrder(partitioner, c => c.Message.TenantId));
    }
}

public sealed class ReleaseNetworkConsumerDefinition : ConsumerDefinition<ReleaseNetworkConsumer>
{
    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<ReleaseNetworkConsumer> consumer, IRegistrationContext context)
    {
        var partitioner = endpoint.CreatePartitioner(16);
        consumer.Message<ReleaseNetwork>(m => m.UsePartitionInOrder(partitioner, c => c.Message.TenantId));
    }
}

public static class AddressingMetadata
{
    public static EventMetadata Of(ConsumeContext context, Guid tenantId) =>
        new(context.CorrelationId, context.MessageId, tenantId.ToString(), "service:networking");
}

/// <summary>At first start, the default pool (when there is no pool at all), so that the first machine gets an address.</summary>
public sealed class DefaultPool(EventStore store, NetworkingOptions options, TimeProvider time, ILogger<DefaultPool> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (await store.ReadStreamVersionAsync(AddressPools.Stream, cancellationToken) > 0)
        {
            return;
        }

        var block = Ipv4Block.Parse(options.DefaultPool);
        try
        {
            await store.AppendAsync(AddressPools.Stream, ExpectedVersion.NoStream,
                [new AddressPoolCreated(Guid.CreateVersion7(), "default", block.ToString(), options.SubnetPrefixLength, time.GetUtcNow())],
                new EventMetadata(Actor: "service:networking"), cancellationToken);
            logger.LogInformation("Created the default address pool {Pool} with /{Prefix} tenant subnets", block, options.SubnetPrefixLength);
        }
        catch (WrongExpectedVersionException)
        {
            // Another instance made it first.
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
