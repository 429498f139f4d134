using MassTransit;
using Npgsql;
using Platform.Contracts.Provisioning;
using Platform.Contracts.Tenancy;
using Platform.EventSourcing;
using Platform.Hosting.Problems;
using Platform.Messaging;
using Platform.Provisioning.Hosts;
using Platform.Provisioning.Machines;

namespace Platform.Provisioning.Snapshots;

/// <summary>
/// Takes a snapshot through its steps — quota (one of the tenant's <c>snapshots</c>), then its host saves the machine — and
/// deletes it by the host's removal and the quota's release; once a fork's snapshot is ready, makes the fork's machines
/// from it. Every command it sends is idempotent by snapshot id, and every report is decided on the snapshot's stream, so a
/// message handled twice does no harm. Quota replies for machines (the same messages) find no snapshot and are left to the
/// machine saga.
/// </summary>
public sealed class SnapshotFlow(IEventStreams streams, EventStore store, MachineCreation creation, TimeProvider time, ILogger<SnapshotFlow> logger) :
    IConsumer<SnapshotRequested>,
    IConsumer<QuotaReserved>,
    IConsumer<QuotaRejected>,
    IConsumer<SnapshotSaved>,
    IConsumer<SnapshotNotSaved>,
    IConsumer<SnapshotReady>,
    IConsumer<SnapshotFailed>,
    IConsumer<SnapshotDeleteRequested>,
    IConsumer<SnapshotRemoved>,
    IConsumer<SnapshotDeleted>
{
    private static readonly QuotaResources OneSnapshot = QuotaResources.None with { Snapshots = 1 };

    public Task Consume(ConsumeContext<SnapshotRequested> context) =>
        context.Publish(new ReserveQuota(context.Message.SnapshotId, context.Message.TenantId, OneSnapshot));

    public async Task Consume(ConsumeContext<QuotaReserved> context)
    {
        if (await LoadAsync(context.Message.MachineId, context.CancellationToken) is { State: SnapshotStates.Creating } snapshot)
        {
            await context.SendToHostAsync(snapshot.HostId, new TakeSnapshot(snapshot.Id, snapshot.MachineId, snapshot.TenantId), context.CancellationToken);
        }
    }

    public Task Consume(ConsumeContext<QuotaRejected> context) =>
        DecideAsync(context, context.Message.MachineId, s => s.Fail(
            $"the tenant's {context.Message.Limit} quota would be {context.Message.Used + context.Message.Requested} of {context.Message.Max}", time.GetUtcNow()));

    /// <summary>Saved: it is ready; saved after it had failed (its host answered too late), what its host keeps goes.</summary>
    public async Task Consume(ConsumeContext<SnapshotSaved> context)
    {
        if (await LoadAsync(context.Message.SnapshotId, context.CancellationToken) is { State: SnapshotStates.Failed or SnapshotStates.Deleted } late)
        {
            await context.SendToHostAsync(context.Message.HostId, new RemoveSnapshot(late.Id, late.TenantId), context.CancellationToken);
            return;
        }

        await DecideAsync(context, context.Message.SnapshotId, s => s.Decide(context.Message, time.GetUtcNow()), $"host:{context.Message.HostId}");
    }

    public Task Consume(ConsumeContext<SnapshotNotSaved> context) =>
        DecideAsync(context, context.Message.SnapshotId, s => s.Fail($"its host could not save the machine: {context.Message.Reason}", time.GetUtcNow()), $"host:{context.Message.HostId}");

    /// <summary>A fork's snapshot is ready: each of its machines that is not made yet is made from it, or refused with why.</summary>
    public async Task Consume(ConsumeContext<SnapshotReady> context)
    {
        if (await LoadAsync(context.Message.SnapshotId, context.CancellationToken) is not { Fork: { } fork } snapshot || snapshot.State != SnapshotStates.Ready)
        {
            return;
        }

        var requested = (await store.ReadStreamAsync(Snapshot.StreamOf(snapshot.Id), 1, 1, DateTimeOffset.MaxValue, context.CancellationToken))[0];
        var metadata = new EventMetadata(requested.Metadata.CorrelationId, TenantId: snapshot.TenantId.ToString(), Actor: requested.Metadata.Actor);
        for (var index = 0; index < fork.MachineIds.Count; index++)
        {
            var machineId = fork.MachineIds[index];
            if (snapshot.RefusedForks.ContainsKey(machineId))
            {
                continue;
            }

            try
            {
                await creation.CreateForkAsync(snapshot, machineId, ForkName(snapshot, fork, index), metadata, context.CancellationToken);
            }
            catch (ProblemException refused)
            {
                logger.LogWarning("Fork {OperationId}: machine {MachineId} could not be made from snapshot {SnapshotId}: {Reason}", fork.OperationId, machineId, snapshot.Id, refused.Detail);
                await DecideAsync(context, snapshot.Id, s => s.RefusedForks.ContainsKey(machineId)
                    ? []
                    : [new ForkMachineRefused(s.Id, s.TenantId, machineId, refused.Detail ?? refused.Title, time.GetUtcNow())]);
            }
        }
    }

    /// <summary>Whatever it held of the quota goes back (a release of nothing is recorded too, so that a late reservation takes nothing).</summary>
    public Task Consume(ConsumeContext<SnapshotFailed> context) =>
        context.Publish(new ReleaseQuota(context.Message.SnapshotId, context.Message.TenantId));

    public async Task Consume(ConsumeContext<SnapshotDeleteRequested> context)
    {
        if (await LoadAsync(context.Message.SnapshotId, context.CancellationToken) is { State: SnapshotStates.Deleting } snapshot)
        {
            await context.SendToHostAsync(snapshot.HostId, new RemoveSnapshot(snapshot.Id, snapshot.TenantId), context.CancellationToken);
        }
    }

    public Task Consume(ConsumeContext<SnapshotRemoved> context) =>
        DecideAsync(context, context.Message.SnapshotId, s => s.Decide(context.Message, time.GetUtcNow()), $"host:{context.Message.HostId}");

    public Task Consume(ConsumeContext<SnapshotDeleted> context) =>
        context.Publish(new ReleaseQuota(context.Message.SnapshotId, context.Message.TenantId));

    /// <summary>The fork's machines are named after the machine forked, the operation and their place: <c>web-3f2a1c-2</c>.</summary>
    private static string ForkName(Snapshot snapshot, SnapshotFork fork, int index) =>
        $"{SnapshotEndpoints.Trimmed(snapshot.MachineName)}-{fork.OperationId.ToString("N")[^6..]}-{index + 1}";

    private async Task<Snapshot?> LoadAsync(Guid snapshotId, CancellationToken cancellationToken) =>
        (await store.LoadAsync<Snapshot>(Snapshot.StreamOf(snapshotId), Snapshot.Evolve, cancellationToken)).State;

    /// <summary>A report about a snapshot that is not known here (a machine's quota reply) records nothing.</summary>
    private Task DecideAsync(ConsumeContext context, Guid snapshotId, Func<Snapshot, IReadOnlyList<object>> decide, string actor = "service:provisioning") =>
        streams.DecideAsync<Snapshot>(Snapshot.StreamOf(snapshotId), Snapshot.Evolve, loaded => loaded.State is not { } snapshot
            ? Decision.Nothing
            : new Decision([new StreamAppend(Snapshot.StreamOf(snapshotId), loaded.ExpectedVersion, decide(snapshot))],
                new EventMetadata(context.CorrelationId, context.MessageId, snapshot.TenantId.ToString(), actor)), context.CancellationToken);
}

/// <summary>One snapshot's messages one at a time per instance, in order (a quota reply carries the snapshot's id as its holder's).</summary>
public sealed class SnapshotFlowDefinition : ConsumerDefinition<SnapshotFlow>
{
    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<SnapshotFlow> consumer, IRegistrationContext context)
    {
        endpoint.PrefetchCount = 32;
        var partitioner = endpoint.CreatePartitioner(16);
        consumer.Message<SnapshotRequested>(m => m.UsePartitionInOrder(partitioner, c => c.Message.SnapshotId));
        consumer.Message<QuotaReserved>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<QuotaRejected>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<SnapshotSaved>(m => m.UsePartitionInOrder(partitioner, c => c.Message.SnapshotId));
        consumer.Message<SnapshotNotSaved>(m => m.UsePartitionInOrder(partitioner, c => c.Message.SnapshotId));
        consumer.Message<SnapshotReady>(m => m.UsePartitionInOrder(partitioner, c => c.Message.SnapshotId));
        consumer.Message<SnapshotFailed>(m => m.UsePartitionInOrder(partitioner, c => c.Message.SnapshotId));
        consumer.Message<SnapshotDeleteRequested>(m => m.UsePartitionInOrder(partitioner, c => c.Message.SnapshotId));
        consumer.Message<SnapshotRemoved>(m => m.UsePartitionInOrder(partitioner, c => c.Message.SnapshotId));
        consumer.Message<SnapshotDeleted>(m => m.UsePartitionInOrder(partitioner, c => c.Message.SnapshotId));
    }
}

/// <summary>How long a snapshot may wait for its host, section <c>Platform:Provisioning:Snapshots</c>.</summary>
public sealed class SnapshotOptions
{
    public const string Section = "Platform:Provisioning:Snapshots";

    /// <summary>How long a snapshot may be <c>creating</c> before it fails (its host down or gone).</summary>
    public TimeSpan SaveTimeout { get; set; } = TimeSpan.FromMinutes(10);

    public static SnapshotOptions Read(IConfiguration configuration)
    {
        var options = configuration.GetSection(Section).Get<SnapshotOptions>() ?? new SnapshotOptions();
        return options.SaveTimeout >= TimeSpan.FromSeconds(10) && options.SaveTimeout <= TimeSpan.FromDays(1)
            ? options
            : throw new Platform.Hosting.Startup.StartupException($"{Section}:SaveTimeout must be between 10 seconds and a day.");
    }
}

/// <summary>
/// Fails the snapshots whose host has not saved them within <see cref="SnapshotOptions.SaveTimeout"/>, every
/// 15 seconds: decided on each one's stream, so one instance records it however many look.
/// </summary>
public sealed class SnapshotDeadlines(NpgsqlDataSource dataSource, EventStore store, IEventStreams streams, SnapshotOptions options, TimeProvider time, ILogger<SnapshotDeadlines> logger)
    : Platform.Hosting.PeriodicWork(time, logger)
{
    protected override TimeSpan Interval { get; } = TimeSpan.FromSeconds(15);

    protected override string What => "look for overdue snapshots";

    protected override Task RunOnceAsync(CancellationToken cancellationToken) => SweepAsync(cancellationToken);

    private async Task SweepAsync(CancellationToken cancellationToken)
    {
        var overdue = new List<Guid>();
        await using (var command = dataSource.CreateCommand(
            $"SELECT id FROM {store.Schema}.snapshots WHERE state = 'creating' AND (snapshot->>'createdAt')::timestamptz <= $1"))
        {
            command.Parameters.AddWithValue(Time.GetUtcNow() - options.SaveTimeout);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                overdue.Add(reader.GetGuid(0));
            }
        }

        foreach (var id in overdue)
        {
            await streams.DecideAsync<Snapshot>(Snapshot.StreamOf(id), Snapshot.Evolve, loaded => loaded.State is not { } snapshot
                ? Decision.Nothing
                : new Decision([new StreamAppend(Snapshot.StreamOf(id), loaded.ExpectedVersion, snapshot.Overdue(Time.GetUtcNow(), options.SaveTimeout))],
                    new EventMetadata(TenantId: snapshot.TenantId.ToString(), Actor: "service:provisioning")), cancellationToken);
            Logger.LogWarning("Snapshot {SnapshotId} failed: its host did not save it within {Timeout}", id, options.SaveTimeout);
        }
    }
}
