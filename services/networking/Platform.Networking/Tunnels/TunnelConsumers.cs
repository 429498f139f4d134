using System.Text.Json;
using MassTransit;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Networking;
using Platform.Contracts.Provisioning;
using Platform.EventSourcing;
using Platform.Networking.Addressing;
using Platform.Messaging;

namespace Platform.Networking.Tunnels;

/// <summary>
/// A machine's tunnel through an exit node, from the saga's command to the host agent's report and back. Every command
/// is idempotent by machine id: one in flight is issued to the host again, one done is answered again, and one that
/// comes after the tunnel was detached makes nothing.
/// </summary>
public sealed class TunnelCommands(EventStore store, NpgsqlDataSource dataSource, TimeProvider time, ILogger<TunnelCommands> logger) :
    IConsumer<AttachTunnel>, IConsumer<DetachTunnel>, IConsumer<ReattachTunnel>, IConsumer<TunnelSetUp>, IConsumer<TunnelSetUpFailed>, IConsumer<TunnelRemoved>
{
    public async Task Consume(ConsumeContext<AttachTunnel> context)
    {
        var command = context.Message;
        var loaded = await store.LoadAsync<MachineTunnel>(MachineTunnel.StreamOf(command.MachineId), MachineTunnel.Evolve, context.CancellationToken);
        switch (loaded.State)
        {
            case { State: TunnelStates.Attached } attached:
                await context.Publish(Attached(attached));
                return;
            case { State: TunnelStates.Attaching } attaching:
                await SetUpAsync(context, attaching with
                {
                    MachineAddress = command.MachineAddress, Gateway = attaching.Gateway ?? command.Gateway, PrefixLength = attaching.PrefixLength ?? command.PrefixLength,
                });
                return;
            case not null:
                // Detached already: the flow that asked has moved on.
                return;
        }

        if (await FindExitNodeAsync(command.ExitNodeId, command.TenantId, context.CancellationToken) is not { } node)
        {
            await context.Publish(new TunnelAttachFailed(command.MachineId, command.TenantId, command.ExitNodeId,
                $"there is no exit node {command.ExitNodeId} this tenant may use"));
            return;
        }

        // Another tunnel may take an address of this node first (or this command race its own copy): then it decides again.
        TunnelRequested? requested = null;
        await store.DecideAsync<ExitNodePeers>(ExitNodePeers.StreamOf(node.ExitNodeId), ExitNodePeers.Evolve, peers =>
        {
            var address = peers.State?.Leases.GetValueOrDefault(command.MachineId) ?? (peers.State ?? ExitNodePeers.Empty).Free(Ipv4Block.Parse(node.PeerRange));
            requested = address is null ? null : new TunnelRequested(command.MachineId, command.TenantId, node.ExitNodeId, command.HostId, command.MachineAddress, address,
                time.GetUtcNow(), command.Gateway, command.PrefixLength);
            return requested is null ? [] :
            [
                new StreamAppend(ExitNodePeers.StreamOf(node.ExitNodeId), peers.ExpectedVersion, [new TunnelAddressLeased(node.ExitNodeId, command.MachineId, requested.TunnelAddress)]),
                new StreamAppend(MachineTunnel.StreamOf(command.MachineId), ExpectedVersion.NoStream, [requested]),
            ];
        }, Metadata(context, command.TenantId), context.CancellationToken);
        if (requested is null)
        {
            await context.Publish(new TunnelAttachFailed(command.MachineId, command.TenantId, command.ExitNodeId,
                $"every tunnel address of exit node {node.Name} ({node.PeerRange}) is taken"));
            return;
        }

        await SetUpAsync(context, MachineTunnel.Evolve(null, requested));
    }

    /// <summary>
    /// Makes an attached tunnel again with a fresh key on its host (a stale tunnel's usual mend: the exit node lost its
    /// peer, or the host's interface is wedged). Once per request: a repeat of one in flight is sent to the host again.
    /// </summary>
    public async Task Consume(ConsumeContext<ReattachTunnel> context)
    {
        var command = context.Message;
        var actor = new EventMetadata(context.CorrelationId, context.MessageId, command.TenantId.ToString(), command.RequestedBy);
        var (tunnel, decided) = await DecideAsync(context, command.MachineId, command.TenantId, t => MachineTunnel.Decide(t, command, time.GetUtcNow()), actor);
        if (decided.OfType<TunnelReattachRequested>().Any() || tunnel is { State: TunnelStates.Attaching } && tunnel.Reattach == command.RequestId)
        {
            await SetUpAsync(context, tunnel!, command.RequestId);
        }
        else if (decided.Count == 0)
        {
            logger.LogInformation("Re-attach {RequestId} of machine {MachineId}'s tunnel changed nothing: the tunnel is {State}",
                command.RequestId, command.MachineId, tunnel?.State ?? "unknown");
        }
    }

    public async Task Consume(ConsumeContext<TunnelSetUp> context)
    {
        var report = context.Message;
        var (tunnel, decided) = await DecideAsync(context, report.MachineId, report.TenantId, t => MachineTunnel.Decide(t, report, time.GetUtcNow()));
        if (decided.Count > 0)
        {
            logger.LogInformation("Tunnel of machine {MachineId} attached through exit node {ExitNodeId} ({Implementation})", tunnel!.MachineId, tunnel.ExitNodeId, report.Implementation);
        }
        else if (tunnel is { State: TunnelStates.Detaching or TunnelStates.Detached })
        {
            // Set up after it was detached (a late copy of the command): take it down again.
            await SendAsync(context, report.HostId, new RemoveTunnel(report.MachineId, report.TenantId));
        }
    }

    public async Task Consume(ConsumeContext<TunnelSetUpFailed> context)
    {
        var report = context.Message;
        var (tunnel, decided) = await DecideAsync(context, report.MachineId, report.TenantId, t => MachineTunnel.Decide(t, report, time.GetUtcNow()));
        if (decided.OfType<TunnelAbandoned>().Any())
        {
            await context.Publish(new TunnelAttachFailed(tunnel!.MachineId, tunnel.TenantId, tunnel.ExitNodeId, $"the host could not set the tunnel up: {report.Reason}"));
        }
    }

    public async Task Consume(ConsumeContext<DetachTunnel> context)
    {
        var command = context.Message;
        var (tunnel, _) = await DecideAsync(context, command.MachineId, command.TenantId, t => MachineTunnel.Decide(t, command, time.GetUtcNow()));
        switch (tunnel)
        {
            case { State: TunnelStates.Attaching or TunnelStates.Attached or TunnelStates.Detaching }:
                await SendAsync(context, tunnel.HostId, new RemoveTunnel(command.MachineId, command.TenantId));
                break;
            case { State: TunnelStates.Detached }:
                // Asked again once detached: answer again.
                await context.Publish(new TunnelDetached(command.MachineId, command.TenantId, tunnel.ExitNodeId == Guid.Empty ? null : tunnel.ExitNodeId, time.GetUtcNow()));
                break;
        }
    }

    public Task Consume(ConsumeContext<TunnelRemoved> context) =>
        DecideAsync(context, context.Message.MachineId, context.Message.TenantId, t => MachineTunnel.Decide(t, context.Message, time.GetUtcNow()));

    /// <summary>
    /// Decides on the machine's tunnel as it is and appends what was decided (with the release of its exit node's address,
    /// when the decision gives it back), deciding again on a lost race. Returns the tunnel the decision was made on.
    /// </summary>
    private async Task<(MachineTunnel? Tunnel, IReadOnlyList<object> Decided)> DecideAsync(
        ConsumeContext context, Guid machineId, Guid tenantId, Func<MachineTunnel?, IReadOnlyList<object>> decide, EventMetadata? metadata = null)
    {
        MachineTunnel? decidedOn = null;
        var decided = await store.DecideAsync<MachineTunnel>(MachineTunnel.StreamOf(machineId), MachineTunnel.Evolve, loaded =>
        {
            decidedOn = loaded.State;
            var events = decide(loaded.State);
            var appends = new List<StreamAppend> { new(MachineTunnel.StreamOf(machineId), loaded.ExpectedVersion, events) };
            if (MachineTunnel.ReleasesAddressOf(loaded.State, events) is { } exitNodeId)
            {
                appends.Add(new StreamAppend(ExitNodePeers.StreamOf(exitNodeId), ExpectedVersion.Any, [new TunnelAddressReleased(exitNodeId, machineId)]));
            }

            return new Decision(appends, metadata ?? Metadata(context, loaded.State?.TenantId ?? tenantId));
        }, context.CancellationToken);
        return (decidedOn, decided);
    }

    private static TunnelAttached Attached(MachineTunnel tunnel) =>
        new(tunnel.MachineId, tunnel.TenantId, tunnel.ExitNodeId, tunnel.HostId, tunnel.TunnelAddress, tunnel.PublicKey!, tunnel.AttachedAt!.Value);

    private async Task SetUpAsync(ConsumeContext context, MachineTunnel tunnel, Guid? rekey = null)
    {
        if (await FindExitNodeAsync(tunnel.ExitNodeId, tunnel.TenantId, context.CancellationToken) is not { } node)
        {
            // Removed since: the host is told nothing; the deadline of the flow that asked fails it.
            logger.LogWarning("Exit node {ExitNodeId} of machine {MachineId}'s tunnel is gone", tunnel.ExitNodeId, tunnel.MachineId);
            return;
        }

        await SendAsync(context, tunnel.HostId, tunnel.SetUp(node, rekey));
    }

    private async Task<ExitNodeRegistered?> FindExitNodeAsync(Guid exitNodeId, Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT node FROM {store.Schema}.exit_nodes WHERE id = $1 AND (tenant_id IS NULL OR tenant_id = $2)");
        command.Parameters.AddWithValue(exitNodeId);
        command.Parameters.AddWithValue(tenantId);
        return await command.ExecuteScalarAsync(cancellationToken) is string json ? JsonSerializer.Deserialize<ExitNodeRegistered>(json, PlatformJson.Options) : null;
    }

    private static async Task SendAsync<T>(ConsumeContext context, Guid hostId, T command) where T : class
    {
        var endpoint = await context.GetSendEndpoint(HostAgentQueue.AddressOf(hostId));
        await endpoint.Send(command, context.CancellationToken);
    }

    private static EventMetadata Metadata(ConsumeContext context, Guid tenantId) => AddressingMetadata.Of(context, tenantId);
}

/// <summary>Agents' handshake reports, kept beside each tunnel (a reading, not an event: nothing about the tunnel changed).</summary>
public sealed class TunnelHandshakesConsumer(NpgsqlDataSource dataSource, EventStore store) : IConsumer<TunnelHandshakesReported>
{
    public async Task Consume(ConsumeContext<TunnelHandshakesReported> context)
    {
        var report = context.Message;
        await using var batch = dataSource.CreateBatch();
        foreach (var tunnel in report.Tunnels)
        {
            // A reading of a key replaced since (a re-attach) says nothing about the tunnel as it is now.
            var command = new NpgsqlBatchCommand($"""
                UPDATE {store.Schema}.tunnels SET latest_handshake_at = $2, checked_at = $3
                WHERE machine_id = $1 AND host_id = $4 AND ($5::text IS NULL OR public_key IS NULL OR public_key = $5)
                """);
            command.Parameters.Add(new NpgsqlParameter { Value = tunnel.MachineId });
            command.Parameters.Add(new NpgsqlParameter { Value = (object?)tunnel.LatestHandshakeAt ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.TimestampTz });
            command.Parameters.Add(new NpgsqlParameter { Value = report.ReportedAt });
            command.Parameters.Add(new NpgsqlParameter { Value = report.HostId });
            command.Parameters.Add(new NpgsqlParameter { Value = (object?)tunnel.PublicKey ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
            batch.BatchCommands.Add(command);
        }

        if (batch.BatchCommands.Count > 0)
        {
            await batch.ExecuteNonQueryAsync(context.CancellationToken);
        }
    }
}

/// <summary>One machine's tunnel commands and reports one at a time per instance, in order.</summary>
public sealed class TunnelCommandsDefinition : ConsumerDefinition<TunnelCommands>
{
    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<TunnelCommands> consumer, IRegistrationContext context)
    {
        var partitioner = endpoint.CreatePartitioner(16);
        consumer.Message<AttachTunnel>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<DetachTunnel>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<ReattachTunnel>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<TunnelSetUp>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<TunnelSetUpFailed>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
        consumer.Message<TunnelRemoved>(m => m.UsePartitionInOrder(partitioner, c => c.Message.MachineId));
    }
}
