using MassTransit;
using Npgsql;
using Platform.Contracts.Networking;
using Platform.Contracts.Provisioning;
using Platform.EventSourcing;
using Platform.Hosting.Problems;
using Platform.Networking.Tunnels;

namespace Platform.Networking.Forwards;

/// <summary>Why a forward was not asked for: a problem type, the HTTP status it maps to, and words a user can act on.</summary>
public sealed record ForwardRefusal(string ProblemType, int Status, string Reason);

/// <summary>
/// The decisions about port forwards, one place for the API and the bus: a forward is asked for on a running machine of
/// its tenant that sits in a tenant segment, recorded as opening and sent to the machine's host agent; removing one
/// closes it on the host first. Every decision reads the forward's stream and appends with its version, so repeats and
/// races settle on one outcome: one in flight is sent to the host again, one done is left as it is.
/// </summary>
public sealed class PortForwarding(EventStore store, NpgsqlDataSource dataSource, TimeProvider time, ILogger<PortForwarding> logger)
{
    /// <summary>Asks for the forward, or finds it asked for already; a refusal changes nothing.</summary>
    public async Task<(MachinePortForward? Forward, ForwardRefusal? Refusal)> RequestAsync(
        ForwardPort command, MachineCopy? machine, ISendEndpointProvider send, EventMetadata metadata, CancellationToken cancellationToken)
    {
        // A copy of this request (or one with the same Idempotency-Key) that came first is answered as it was.
        (MachinePortForward? Forward, ForwardRefusal? Refusal) outcome = default;
        await store.DecideAsync<MachinePortForward>(MachinePortForward.StreamOf(command.ForwardId), MachinePortForward.Evolve, existing =>
        {
            if (existing is not null)
            {
                outcome = existing.TenantId != command.TenantId || existing.MachineId != command.MachineId
                    ? (null, new ForwardRefusal(ProblemTypes.Conflict, StatusCodes.Status409Conflict, $"the forward id {command.ForwardId} is taken by another forward"))
                    : (existing, null);
                return [];
            }

            if (Check(command, machine) is { } refusal)
            {
                outcome = (null, refusal);
                return [];
            }

            var requested = new PortForwardRequested(command.ForwardId, command.MachineId, command.TenantId, command.HostId, command.MachineAddress, command.Port, time.GetUtcNow());
            outcome = (MachinePortForward.Evolve(null, requested), null);
            return [requested];
        }, metadata, cancellationToken);
        if (outcome.Forward is { State: PortForwardStates.Opening } opening)
        {
            await OpenOnHostAsync(send, opening, command, cancellationToken);
        }

        return outcome;
    }

    /// <summary>
    /// Closes the forward on its host (or forgets it, when the host holds nothing of it). Null when no forward of
    /// <paramref name="tenantId"/> has that id; a removed one is answered with its state again.
    /// </summary>
    public async Task<MachinePortForward?> RemoveAsync(Guid forwardId, Guid tenantId, ISendEndpointProvider send, EventMetadata metadata, CancellationToken cancellationToken)
    {
        // The host may answer meanwhile: then this is decided again on what it said.
        MachinePortForward? found = null;
        var decided = await store.DecideAsync<MachinePortForward>(MachinePortForward.StreamOf(forwardId), MachinePortForward.Evolve, forward =>
        {
            found = forward is not null && forward.TenantId == tenantId ? forward : null;
            return MachinePortForward.DecideRemoval(forward, tenantId, time.GetUtcNow());
        }, metadata, cancellationToken);
        if (found is { MayBeOnHost: true })
        {
            await CloseOnHostAsync(send, found, cancellationToken);
        }

        return found is null ? null : decided.Aggregate(found, MachinePortForward.Evolve);
    }

    /// <summary>
    /// Forgets every forward of a machine that is gone from its host (its agent closed them when it tore the machine
    /// down), and tells the host to close them all the same: a forward opened in a race with the teardown must not stay.
    /// </summary>
    public async Task RemoveAllOfAsync(Guid machineId, Guid tenantId, string reason, ISendEndpointProvider send, EventMetadata metadata, CancellationToken cancellationToken)
    {
        foreach (var forwardId in await ForwardsOfAsync(machineId, cancellationToken))
        {
            MachinePortForward? removed = null;
            await store.DecideAsync<MachinePortForward>(MachinePortForward.StreamOf(forwardId), MachinePortForward.Evolve, forward =>
            {
                removed = forward is { State: not PortForwardStates.Removed } && forward.TenantId == tenantId ? forward : null;
                return removed is null ? [] : [removed.Removed(reason, time.GetUtcNow())];
            }, metadata, cancellationToken);
            if (removed is null)
            {
                continue;
            }

            if (removed.MayBeOnHost)
            {
                await CloseOnHostAsync(send, removed, cancellationToken);
            }

            logger.LogInformation("Port forward {ForwardId} of machine {MachineId} removed: {Reason}", forwardId, machineId, reason);
        }
    }

    /// <summary>The forwards of a machine that have a row (every one not removed).</summary>
    public async Task<IReadOnlyList<Guid>> ForwardsOfAsync(Guid machineId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT forward_id FROM {store.Schema}.port_forwards WHERE machine_id = $1");
        command.Parameters.AddWithValue(machineId);
        var forwards = new List<Guid>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            forwards.Add(reader.GetGuid(0));
        }

        return forwards;
    }

    public static Task CloseOnHostAsync(ISendEndpointProvider send, MachinePortForward forward, CancellationToken cancellationToken) =>
        CloseOnHostAsync(send, forward.HostId, new ClosePortForward(forward.ForwardId, forward.MachineId, forward.TenantId), cancellationToken);

    public static async Task CloseOnHostAsync(ISendEndpointProvider send, Guid hostId, ClosePortForward command, CancellationToken cancellationToken)
    {
        var endpoint = await send.GetSendEndpoint(HostAgentQueue.AddressOf(hostId));
        await endpoint.Send(command, cancellationToken);
    }

    private static async Task OpenOnHostAsync(ISendEndpointProvider send, MachinePortForward forward, ForwardPort command, CancellationToken cancellationToken)
    {
        var endpoint = await send.GetSendEndpoint(HostAgentQueue.AddressOf(forward.HostId));
        await endpoint.Send(new OpenPortForward(forward.ForwardId, forward.MachineId, forward.TenantId, forward.MachineAddress, command.Gateway, command.PrefixLength, forward.Port),
            cancellationToken);
    }

    /// <summary>The command must match networking's copy of the machine: its tenant's, running on that host at that address, in a segment.</summary>
    private static ForwardRefusal? Check(ForwardPort command, MachineCopy? machine)
    {
        if (command.Port is < 1 or > 65535)
        {
            return new ForwardRefusal(ProblemTypes.ValidationFailed, StatusCodes.Status422UnprocessableEntity, "a port is 1 to 65535");
        }

        if (machine is null || machine.TenantId != command.TenantId || machine.State == MachineCopyStates.Destroyed)
        {
            return new ForwardRefusal(ProblemTypes.NotFound, StatusCodes.Status404NotFound, $"there is no machine {command.MachineId} of this tenant");
        }

        if (machine.Driver is { } driver && !MachineCopy.SegmentDrivers.Contains(driver))
        {
            return new ForwardRefusal(ProblemTypes.Conflict, StatusCodes.Status409Conflict,
                $"machine {command.MachineId} is a {driver} machine: only sandbox and microvm machines sit in their tenant's network on a host, where a host port can reach them");
        }

        if (machine.State != MachineCopyStates.Running || machine.Address is null || machine.HostId is null)
        {
            return new ForwardRefusal(ProblemTypes.Conflict, StatusCodes.Status409Conflict,
                $"machine {command.MachineId} is not running with an address (it is {machine.State}); forward its ports once it runs");
        }

        return machine.HostId != command.HostId || machine.Address != command.MachineAddress
            ? new ForwardRefusal(ProblemTypes.Conflict, StatusCodes.Status409Conflict, $"machine {command.MachineId} runs on host {machine.HostId} at {machine.Address}, not where the command says")
            : null;
    }
}
