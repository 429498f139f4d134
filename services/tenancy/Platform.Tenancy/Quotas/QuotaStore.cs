using MassTransit;
using Platform.Contracts.Tenancy;
using Platform.EventSourcing;
using Platform.Hosting;

namespace Platform.Tenancy.Quotas;

/// <summary>Loads tenant quotas from their streams, starting from the configured defaults.</summary>
public sealed class QuotaStore(EventStore store, IConfiguration configuration)
{
    public QuotaResources Defaults { get; } = ConfigurationRecords.Read(configuration.GetSection("Platform:Tenancy:DefaultQuota"),
        new QuotaResources(Machines: 10, Vcpus: 32, MemoryMiB: 64 * 1024, DiskMiB: 512 * 1024, Tunnels: 10, PortForwards: 20, Snapshots: 20));

    public async Task<Loaded> LoadAsync(Guid tenantId, CancellationToken cancellationToken)
    {
        var initial = TenantQuota.Initial(Defaults);
        var loaded = await store.LoadAsync<TenantQuota>(TenantQuota.StreamOf(tenantId), (state, @event) => (state ?? initial).Apply(@event), cancellationToken);
        return new Loaded(loaded.State ?? initial, loaded.ExpectedVersion);
    }

    public static EventMetadata Metadata(ConsumeContext context, Guid tenantId) =>
        new(context.CorrelationId, context.MessageId, tenantId.ToString(), "service:tenancy");

    public sealed record Loaded(TenantQuota State, ExpectedVersion Expected);
}
