using Platform.Contracts.Networking;
using Platform.EventSourcing;
using Platform.Hosting.Problems;
using Platform.Hosting.Startup;
using Platform.Networking.Tunnels;

namespace Platform.Networking.Addressing;

/// <summary>IPAM's settings, section <c>Platform:Networking</c>.</summary>
public sealed class NetworkingOptions
{
    public const string Section = "Platform:Networking";

    /// <summary>The pool made at first start when there is none.</summary>
    public string DefaultPool { get; set; } = "10.64.0.0/10";

    /// <summary>The size of each tenant's subnet in the default pool.</summary>
    public int SubnetPrefixLength { get; set; } = 24;

    /// <summary>How long a released address rests before it is leased again (so stale packets and caches do not reach a new owner).</summary>
    public TimeSpan Quarantine { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How tunnels' handshakes are judged (<c>Platform:Networking:Tunnels</c>).</summary>
    public TunnelHealthOptions Tunnels { get; set; } = new();

    /// <summary>The settings, or one clear line at start saying which is wrong.</summary>
    public static NetworkingOptions Read(IConfiguration configuration)
    {
        var options = configuration.GetSection(Section).Get<NetworkingOptions>() ?? new NetworkingOptions();
        if (!Ipv4Block.TryParse(options.DefaultPool, out var pool))
        {
            throw new StartupException($"{Section}:DefaultPool must be an IPv4 CIDR block such as 10.64.0.0/10, not '{options.DefaultPool}'.");
        }

        if (options.SubnetPrefixLength < pool.PrefixLength || options.SubnetPrefixLength > 30)
        {
            throw new StartupException($"{Section}:SubnetPrefixLength must be between the default pool's prefix ({pool.PrefixLength}) and 30, not {options.SubnetPrefixLength}.");
        }

        if (options.Quarantine < TimeSpan.Zero)
        {
            throw new StartupException($"{Section}:Quarantine cannot be negative.");
        }

        if (options.Tunnels.FirstHandshakeWithin <= TimeSpan.Zero || options.Tunnels.StaleAfter <= TimeSpan.Zero || options.Tunnels.CheckInterval <= TimeSpan.Zero)
        {
            throw new StartupException($"{Section}:Tunnels:FirstHandshakeWithin, StaleAfter and CheckInterval must be positive durations such as 00:00:30.");
        }

        return options;
    }
}

/// <summary>
/// Leases and releases machine addresses. Each decision is made on fresh state and appended with the
/// expected versions of the streams it read: a lost race is decided again, never applied twice.
/// </summary>
public sealed class AddressAllocation(EventStore store, NetworkingOptions options, TimeProvider time)
{
    public async Task<AllocationResult> AllocateAsync(AllocateNetwork command, EventMetadata metadata, CancellationToken cancellationToken)
    {
        // Another allocation in this subnet (or another tenant's carving) may commit first: then it is decided again.
        AllocationResult? result = null;
        await store.DecideAsync(async token => (
            Pools: await store.LoadAsync<AddressPools>(AddressPools.Stream, AddressPools.Evolve, token),
            Leases: await store.LoadAsync<SubnetLeases>(SubnetLeases.StreamOf(command.TenantId), SubnetLeases.Evolve, token)), loaded =>
        {
            var (pools, leases) = loaded;
            (result, var appends) = Decide(command, pools, leases);
            return new Decision(appends, metadata);
        }, cancellationToken);
        return result!;
    }

    private (AllocationResult Result, IReadOnlyList<StreamAppend> Appends) Decide(AllocateNetwork command, Rehydrated<AddressPools> pools, Rehydrated<SubnetLeases> leases)
    {
        var state = pools.State ?? AddressPools.Empty;
        var now = time.GetUtcNow();
        var carved = state.Subnets.ContainsKey(command.TenantId) ? null : state.Carve(command.TenantId, now);
        var subnet = state.Subnets.GetValueOrDefault(command.TenantId) ?? carved;
        if (subnet is null)
        {
            return (AllocationResult.Refused(new NetworkAllocationRefused(command.MachineId, command.TenantId, ProblemTypes.PoolExhausted,
                $"every pool is carved into tenant subnets ({string.Join(", ", state.Pools.Select(p => p.Block))}); a platform-admin can add a pool")), []);
        }

        if (leases.State?.Leases.GetValueOrDefault(command.MachineId) is { } existing)
        {
            return (AllocationResult.Existing(existing), []);
        }

        if (leases.State?.Released.ContainsKey(command.MachineId) == true)
        {
            // A copy that arrived after the machine gave its address back: it must not take another.
            return (AllocationResult.Refused(new NetworkAllocationRefused(command.MachineId, command.TenantId, ProblemTypes.SubnetExhausted,
                "the machine released its address already; a released machine gets no other")), []);
        }

        var lease = (leases.State ?? SubnetLeases.Empty).Allocate(command.MachineId, command.TenantId, Ipv4Block.Parse(subnet.Cidr), now);
        if (lease is null)
        {
            return (AllocationResult.Refused(new NetworkAllocationRefused(command.MachineId, command.TenantId, ProblemTypes.SubnetExhausted,
                $"every address of the tenant's subnet {subnet.Cidr} is leased or in quarantine")), []);
        }

        return (AllocationResult.Leased(lease),
        [
            new StreamAppend(AddressPools.Stream, pools.ExpectedVersion, carved is null ? [] : [carved]),
            new StreamAppend(SubnetLeases.StreamOf(command.TenantId), leases.ExpectedVersion, [lease]),
        ]);
    }

    /// <summary>
    /// Ends the machine's lease (recorded: the relay announces it); a machine that never held one is recorded as
    /// released too. A machine released already gets its earlier release back; null means a release was recorded.
    /// </summary>
    public async Task<NetworkReleased?> ReleaseAsync(ReleaseNetwork command, EventMetadata metadata, CancellationToken cancellationToken)
    {
        var leases = await store.LoadAsync<SubnetLeases>(SubnetLeases.StreamOf(command.TenantId), SubnetLeases.Evolve, cancellationToken);
        var now = time.GetUtcNow();
        if (leases.State?.Released.GetValueOrDefault(command.MachineId) is { } earlier)
        {
            return earlier;
        }

        if (leases.State?.Leases.GetValueOrDefault(command.MachineId) is not { } lease)
        {
            // Released before it was ever leased (its allocation may still be on the way): recorded, so that allocation is refused.
            await store.AppendAsync(SubnetLeases.StreamOf(command.TenantId), leases.Exists ? leases.ExpectedVersion : ExpectedVersion.NoStream,
                [new NetworkReleased(command.MachineId, command.TenantId, null, now, now)], metadata, cancellationToken);
            return null;
        }

        await store.AppendAsync(SubnetLeases.StreamOf(command.TenantId), leases.ExpectedVersion,
            [new NetworkReleased(command.MachineId, command.TenantId, lease.Address, now, now + options.Quarantine)], metadata, cancellationToken);
        return null;
    }
}

/// <summary>What an allocation came to: a new lease (recorded, so the relay announces it), the lease the machine had, or a refusal.</summary>
public sealed record AllocationResult(NetworkAllocated? Lease, bool IsNew, NetworkAllocationRefused? Refusal)
{
    public static AllocationResult Leased(NetworkAllocated lease) => new(lease, true, null);

    public static AllocationResult Existing(NetworkAllocated lease) => new(lease, false, null);

    public static AllocationResult Refused(NetworkAllocationRefused refusal) => new(null, false, refusal);
}
