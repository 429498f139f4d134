using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Platform.Contracts;
using Platform.Contracts.Networking;
using Platform.Contracts.Provisioning;
using Platform.Provisioning.Drivers.Networking;

namespace Platform.HostAgent.Networking;

/// <summary>
/// The host side of tenant networks, as networking decides them: each tenant's segment on this host (made when its
/// first machine or tunnel arrives, removed when its last goes), machines plugged into it at their leased address, and
/// their tunnels through exit nodes and host ports forwarded to them. Tunnels and forwards are recorded (one file each)
/// so that a restarted agent can tell its own from leftovers; a tunnel's private key never leaves the interface it was
/// made for.
/// </summary>
public sealed class TenantNetworks(AgentOptions options, HostIdentity host, ILogger<TenantNetworks> logger)
{
    private readonly string _tunnels = Directory.CreateDirectory(Path.Combine(options.StatePath, "tunnels")).FullName;
    private readonly string _forwards = Directory.CreateDirectory(Path.Combine(options.StatePath, "forwards")).FullName;
    private readonly PortForwardOptions _forwardOptions = options.PortForwards.ToOptions();

    /// <summary>The host address the API shows with forwards (any address of the host reaches them).</summary>
    public string ForwardAddress { get; } = options.PortForwards.Address ?? DefaultRouteAddress();

    /// <summary>One tenant's segment is made, joined and removed one at a time: machines of a tenant launch in parallel.</summary>
    private readonly ConcurrentDictionary<Guid, SemaphoreSlim> _tenantLocks = new();

    public string SegmentOf(Guid tenantId) => TenantSegment.NameFor(host.HostId, tenantId);

    public Task<TenantSegment> EnsureSegmentAsync(Guid tenantId, string gateway, int prefixLength) =>
        TenantSegment.EnsureAsync(SegmentOf(tenantId), IPAddress.Parse(gateway), prefixLength);

    /// <summary>A sandbox's network: the machine's own namespace, its <c>eth0</c> a port of the tenant's segment.</summary>
    public async Task PlugNamespaceAsync(Guid tenantId, NetworkAttachment network)
    {
        using var _ = await LockAsync(tenantId);
        var segment = await EnsureSegmentAsync(tenantId, network.Gateway, network.PrefixLength);
        await NetworkNamespace.DeleteAsync(network.Namespace);
        await IpCommand.RunAsync("netns", "add", network.Namespace);
        try
        {
            // The namespace belongs to the host's user namespace, where the sandbox's root is nobody: it may still serve on
            // port 80 and ping, as on a machine of its own.
            await IpCommand.RunAsync("netns", "exec", network.Namespace, "sysctl", "-qw", "net.ipv4.ip_unprivileged_port_start=0", "net.ipv4.ping_group_range=0 2147483647");
            await segment.PlugAsync(network.Namespace, IPAddress.Parse(network.Address), network.PrefixLength, IPAddress.Parse(network.Gateway));
        }
        catch
        {
            await NetworkNamespace.DeleteAsync(network.Namespace);
            throw;
        }
    }

    /// <summary>A micro-VM that came up in its own namespace joins its tenant's segment through its tap.</summary>
    public async Task BridgeTapAsync(Guid tenantId, NetworkAttachment network, string tap)
    {
        using var _ = await LockAsync(tenantId);
        var segment = await EnsureSegmentAsync(tenantId, network.Gateway, network.PrefixLength);
        await segment.BridgeAsync(network.Namespace, tap, IPAddress.Parse(network.Gateway));
    }

    /// <summary>Sets the machine's tunnel up (or finds it up already) and returns its end's public key.</summary>
    public async Task<(string PublicKey, string Implementation)> SetUpTunnelAsync(SetUpTunnel command)
    {
        using var _ = await LockAsync(command.TenantId);
        var segment = await EnsureSegmentAsync(command.TenantId, command.Gateway, command.PrefixLength);
        var tunnelId = command.MachineId.ToString();
        var keyedBy = Find(command.MachineId)?.KeyedBy;
        var record = new TunnelRecord(command.MachineId, command.TenantId, segment.Namespace, WireGuardTunnel.InterfaceNameFor(tunnelId), command.Rekey ?? keyedBy);
        Save(record);
        if ((await WireGuardTunnel.ListAsync(segment.Namespace)).Contains(record.Interface))
        {
            // A re-attach makes it again with a fresh key, once: a copy of the same re-attach finds it made.
            if (command.Rekey is not { } rekey || rekey == keyedBy)
            {
                if (await TryOpenAsync(segment, tunnelId) is { } open)
                {
                    return (open.PublicKey, open.Implementation.ToString().ToLowerInvariant());
                }
            }

            await WireGuardTunnel.DetachAsync(segment.Namespace, record.Interface);
        }

        var peer = new WireGuardPeer(command.ExitPublicKey, command.ExitEndpoint, command.AllowedIps.Select(IPNetwork.Parse).ToList(), PersistentKeepaliveSeconds: 25);
        using var privateKey = WireGuardPrivateKey.Generate();
        var tunnel = await WireGuardTunnel.AttachAsync(segment,
            new TunnelSpec(tunnelId, IPAddress.Parse(command.MachineAddress), IPAddress.Parse(command.TunnelAddress), 32, peer), privateKey);
        logger.LogInformation("Tunnel of machine {MachineId} attached ({Implementation}) as {TunnelAddress}", command.MachineId, tunnel.Implementation, command.TunnelAddress);
        return (tunnel.PublicKey, tunnel.Implementation.ToString().ToLowerInvariant());
    }

    public async Task RemoveTunnelAsync(Guid machineId)
    {
        if (Find(machineId) is { } record)
        {
            await WireGuardTunnel.DetachAsync(record.Segment, record.Interface);
            File.Delete(FileOf(machineId));
        }
    }

    /// <summary>
    /// Forwards a free host port of the configured range to the machine's port (or finds it forwarded) and returns the
    /// host port. The port is free when no forward holds it and this host lets it be bound.
    /// </summary>
    public async Task<int> OpenPortForwardAsync(OpenPortForward command)
    {
        using var _ = await LockAsync(command.TenantId);
        var segment = await EnsureSegmentAsync(command.TenantId, command.Gateway, command.PrefixLength);
        var forward = await PortForward.AddAsync(segment, command.ForwardId.ToString(), IPAddress.Parse(command.MachineAddress), command.Port, _forwardOptions);
        // Recorded once it exists: a crash before leaves a table that no record explains, which the reconcile removes.
        SaveForward(new ForwardRecord(command.ForwardId, command.MachineId, command.TenantId, segment.Namespace, forward.Table, forward.HostPort));
        logger.LogInformation("Port {Port} of machine {MachineId} forwarded from host port {HostPort}", command.Port, command.MachineId, forward.HostPort);
        return forward.HostPort;
    }

    /// <summary>Closes the forward; closed already is fine.</summary>
    public async Task ClosePortForwardAsync(Guid forwardId, Guid tenantId)
    {
        using var _ = await LockAsync(tenantId);
        await CloseForwardAsync(forwardId);
    }

    /// <summary>Closes every forward of the machine (it is being torn down) and says which they were.</summary>
    public async Task<IReadOnlyList<Guid>> ClosePortForwardsOfAsync(Guid machineId, Guid tenantId)
    {
        using var _ = await LockAsync(tenantId);
        var closed = new List<Guid>();
        foreach (var record in Forwards().Where(f => f.MachineId == machineId))
        {
            await CloseForwardAsync(record.ForwardId);
            closed.Add(record.ForwardId);
        }

        return closed;
    }

    /// <summary>Each recorded tunnel with its latest handshake.</summary>
    public async Task<IReadOnlyList<TunnelHandshake>> HandshakesAsync()
    {
        var handshakes = new List<TunnelHandshake>();
        foreach (var record in Tunnels())
        {
            var tunnel = await TryOpenAsync(TenantSegment.Open(record.Segment), record.MachineId.ToString());
            handshakes.Add(tunnel is null
                ? new TunnelHandshake(record.MachineId, null)
                : new TunnelHandshake(record.MachineId, await tunnel.LatestHandshakeAsync(), tunnel.PublicKey));
        }

        return handshakes;
    }

    /// <summary>
    /// Removes the tenant's segment when nothing of it is left on this host: no machine among <paramref name="machinesOfTenant"/>
    /// and no tunnel. Tunnels go with the namespace; forwards' host tables do not, so they are removed first.
    /// </summary>
    public async Task RemoveSegmentIfUnusedAsync(Guid tenantId, Func<int> machinesOfTenant)
    {
        using var _ = await LockAsync(tenantId);
        if (machinesOfTenant() == 0 && Tunnels().All(t => t.TenantId != tenantId))
        {
            await DeleteSegmentAsync(SegmentOf(tenantId));
        }
    }

    /// <summary>
    /// After a restart: forwards of machines no longer here (<paramref name="machines"/>) and forwards of this host's
    /// segments that no record explains are removed, tunnels that no record explains are detached, and segments of
    /// tenants with neither a machine nor a tunnel are removed.
    /// </summary>
    public async Task ReconcileAsync(IReadOnlySet<Guid> machines, IReadOnlySet<Guid> tenantsWithMachines)
    {
        foreach (var orphan in Forwards().Where(f => !machines.Contains(f.MachineId)))
        {
            logger.LogWarning("Removing port forward {ForwardId}: machine {MachineId} is no longer on this host", orphan.ForwardId, orphan.MachineId);
            await CloseForwardAsync(orphan.ForwardId);
        }

        var explained = Forwards().Select(f => f.Table).ToHashSet();
        var ours = TenantSegment.PrefixOf(host.HostId);
        foreach (var leftover in (await PortForward.ListAsync()).Where(f => f.Segment.StartsWith(ours, StringComparison.Ordinal) && !explained.Contains(f.Table)))
        {
            logger.LogWarning("Removing port forward table {Table} of {Segment}: no forward of this host is it", leftover.Table, leftover.Segment);
            await leftover.RemoveAsync();
        }

        var recorded = Tunnels();
        var wanted = recorded.Select(r => r.Interface).ToHashSet();
        var keep = tenantsWithMachines.Concat(recorded.Select(r => r.TenantId)).Select(SegmentOf).ToHashSet();
        foreach (var segment in await NetworkNamespace.ListAsync(TenantSegment.PrefixOf(host.HostId)))
        {
            if (!keep.Contains(segment))
            {
                logger.LogWarning("Removing segment {Segment}: no machine or tunnel of this host is in it", segment);
                await DeleteSegmentAsync(segment);
                continue;
            }

            foreach (var leftover in (await WireGuardTunnel.ListAsync(segment)).Where(i => !wanted.Contains(i)))
            {
                logger.LogWarning("Removing tunnel interface {Interface} from {Segment}: no tunnel of this host is it", leftover, segment);
                await WireGuardTunnel.DetachAsync(segment, leftover);
            }
        }
    }

    /// <summary>A segment's forwards first: their host tables outlive the namespace.</summary>
    private async Task DeleteSegmentAsync(string segment)
    {
        foreach (var record in Forwards().Where(f => f.Segment == segment))
        {
            await CloseForwardAsync(record.ForwardId);
        }

        foreach (var leftover in (await PortForward.ListAsync()).Where(f => f.Segment == segment))
        {
            await leftover.RemoveAsync();
        }

        await TenantSegment.Open(segment).DeleteAsync();
    }

    /// <summary>The caller holds the forward's tenant's lock.</summary>
    private async Task CloseForwardAsync(Guid forwardId)
    {
        await PortForward.RemoveAsync(forwardId.ToString());
        File.Delete(ForwardFileOf(forwardId));
    }

    /// <summary>
    /// The address the host's default route leaves from: connecting a UDP socket picks it without sending anything.
    /// A host without a default route advertises loopback.
    /// </summary>
    private static string DefaultRouteAddress()
    {
        try
        {
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            probe.Connect(IPAddress.Parse("192.0.2.1"), 9);
            return ((IPEndPoint)probe.LocalEndPoint!).Address.ToString();
        }
        catch (SocketException)
        {
            return IPAddress.Loopback.ToString();
        }
    }

    private async Task<IDisposable> LockAsync(Guid tenantId)
    {
        var gate = _tenantLocks.GetOrAdd(tenantId, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync();
        return new Held(gate);
    }

    private async Task<WireGuardTunnel?> TryOpenAsync(TenantSegment segment, string tunnelId)
    {
        try
        {
            return await WireGuardTunnel.OpenAsync(segment, tunnelId);
        }
        catch (IOException)
        {
            return null;
        }
    }

    private IReadOnlyList<TunnelRecord> Tunnels() =>
        Directory.EnumerateFiles(_tunnels, "*.json").Select(f => JsonSerializer.Deserialize<TunnelRecord>(File.ReadAllText(f), PlatformJson.Options)!).ToList();

    private TunnelRecord? Find(Guid machineId) =>
        File.Exists(FileOf(machineId)) ? JsonSerializer.Deserialize<TunnelRecord>(File.ReadAllText(FileOf(machineId)), PlatformJson.Options) : null;

    private void Save(TunnelRecord record)
    {
        var file = FileOf(record.MachineId);
        File.WriteAllText(file + ".tmp", JsonSerializer.Serialize(record, PlatformJson.Options));
        File.Move(file + ".tmp", file, overwrite: true);
    }

    private string FileOf(Guid machineId) => Path.Combine(_tunnels, $"{machineId}.json");

    private IReadOnlyList<ForwardRecord> Forwards() =>
        Directory.EnumerateFiles(_forwards, "*.json").Select(f => JsonSerializer.Deserialize<ForwardRecord>(File.ReadAllText(f), PlatformJson.Options)!).ToList();

    private void SaveForward(ForwardRecord record)
    {
        var file = ForwardFileOf(record.ForwardId);
        File.WriteAllText(file + ".tmp", JsonSerializer.Serialize(record, PlatformJson.Options));
        File.Move(file + ".tmp", file, overwrite: true);
    }

    private string ForwardFileOf(Guid forwardId) => Path.Combine(_forwards, $"{forwardId}.json");

    private sealed class Held(SemaphoreSlim gate) : IDisposable
    {
        public void Dispose() => gate.Release();
    }

    /// <summary>A tunnel on this host; <paramref name="KeyedBy"/> is the re-attach that made its current key (null: its first).</summary>
    private sealed record TunnelRecord(Guid MachineId, Guid TenantId, string Segment, string Interface, Guid? KeyedBy = null);

    private sealed record ForwardRecord(Guid ForwardId, Guid MachineId, Guid TenantId, string Segment, string Table, int HostPort);
}
