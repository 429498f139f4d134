using MassTransit;
using Platform.Contracts.Tenancy;
using Platform.EventSourcing;
using Platform.Messaging.Inbox;
using Platform.Messaging;

namespace Platform.Tenancy.Quotas;

/// <summary>
/// Reserves and releases quota. Each tenant's quota is one stream appended with its expected version, so
/// parallel reservations can never over-commit: a lost race is retried on fresh state. Messages of one
/// tenant are also partitioned to one consumer at a time, which keeps those races rare.
/// </summary>
public sealed class ReserveQuotaConsumer(Inbox inbox, QuotaStore quotas) : IConsumer<ReserveQuota>
{
    public async Task Consume(ConsumeContext<ReserveQuota> context)
    {
        var command = context.Message;
        var quota = await quotas.LoadAsync(command.TenantId, context.CancellationToken);
        if (quota.State.Released.Contains(command.MachineId))
        {
            // A copy that arrived after the machine gave its quota back: its flow has moved on.
            return;
        }

        var decision = quota.State.Decide(command);
        if (decision is null)
        {
            // Held already: answer again without changing anything, so a re-issued command gets its reply.
            await context.Publish(new QuotaReserved(command.MachineId, command.TenantId, quota.State.Reservations[command.MachineId]));
            return;
        }

        await inbox.HandleOnceAsync(context, nameof(ReserveQuotaConsumer), session =>
        {
            session.Append(TenantQuota.StreamOf(command.TenantId), quota.Expected, [decision], QuotaStore.Metadata(context, command.TenantId));
            return Task.CompletedTask;
        });
    }
}

/// <summary>Answers whether a request would fit in the tenant's quota now; reads only.</summary>
public sealed class CheckQuotaConsumer(QuotaStore quotas) : IConsumer<CheckQuota>
{
    public async Task Consume(ConsumeContext<CheckQuota> context)
    {
        var quota = await quotas.LoadAsync(context.Message.TenantId, context.CancellationToken);
        await context.RespondAsync(quota.State.Check(context.Message.Requested));
    }
}

public sealed class ReleaseQuotaConsumer(Inbox inbox, QuotaStore quotas) : IConsumer<ReleaseQuota>
{
    public async Task Consume(ConsumeContext<ReleaseQuota> context)
    {
        var command = context.Message;
        var quota = await quotas.LoadAsync(command.TenantId, context.CancellationToken);
        if (quota.State.Decide(command) is not { } decision)
        {
            // Released already: say so again, so that a re-issued command gets its reply.
            await context.Publish(new QuotaReleased(command.MachineId, command.TenantId, QuotaResources.None));
            return;
        }

        await inbox.HandleOnceAsync(context, nameof(ReleaseQuotaConsumer), session =>
        {
            session.Append(TenantQuota.StreamOf(command.TenantId), quota.Expected, [decision], QuotaStore.Metadata(context, command.TenantId));
            return Task.CompletedTask;
        });
    }
}

/// <summary>Partitioned by tenant: one tenant's reservations run one at a time per instance.</summary>
public sealed class ReserveQuotaConsumerDefinition : ConsumerDefinition<ReserveQuotaConsumer>
{
    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<ReserveQuotaConsumer> consumer, IRegistrationContext context)
    {
        var partitioner = endpoint.CreatePartitioner(16);
        consumer.Message<ReserveQuota>(message => message.UsePartitionInOrder(partitioner, m => m.Message.TenantId));
    }
}

public sealed class ReleaseQuotaConsumerDefinition : ConsumerDefinition<ReleaseQuotaConsumer>
{
    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<ReleaseQuotaConsumer> consumer, IRegistrationContext context)
    {
        var partitioner = endpoint.CreatePartitioner(16);
        consumer.Message<ReleaseQuota>(message => message.UsePartitionInOrder(partitioner, m => m.Message.TenantId));
    }
}
