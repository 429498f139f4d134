using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Platform.Contracts;
using Platform.Contracts.Networking;
using Platform.Contracts.Provisioning;
using Platform.Provisioning.Drivers.Networking;

namespace Platform.HostAgent.Networking;

/// <summary>
/// The host side of tenant networks, as networking decides them: each tenant's segment on this host (made when its
/// first machine or tunnel arrives, removed when its last goes), machines plugged into it at their leased address, and
/// their tunnels through exit nodes. Tunnels are recorded (one file each) so that a restarted agent can tell its
/// tunnels from leftovers; a tunnel's private key never leaves the interface it was made for.
/// </summary>
public sealed class TenantNetworks(AgentOptions options, HostIdentity host, ILogger<TenantNetworks> logger)
{
    private readonly string _tunnels = Directory.CreateDirectory(Path.Combine(options.StatePath, "tunnels")).FullName;

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
        var record = new TunnelRecord(command.MachineId, command.TenantId, segment.Namespace, WireGuardTunnel.InterfaceNameFor(tunnelId));
        Save(record);
        if ((await WireGuardTunnel.ListAsync(segment.Namespace)).Contains(record.Interface) && await TryOpenAsync(segment, tunnelId) is { } open)
        {
            return (open.PublicKey, open.Implementation.ToString().ToLowerInvariant());
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

    /// <summary>Each recorded tunnel with its latest handshake.</summary>
    public async Task<IReadOnlyList<TunnelHandshake>> HandshakesAsync()
    {
        var handshakes = new List<TunnelHandshake>();
        foreach (var record in Tunnels())
        {
            var tunnel = await TryOpenAsync(TenantSegment.Open(record.Segment), record.MachineId.ToString());
            handshakes.Add(new TunnelHandshake(record.MachineId, tunnel is null ? null : await tunnel.LatestHandshakeAsync()));
        }

        return handshakes;
    }

    /// <summary>
    /// Removes the tenant's segment when nothing of it is left on this host: no machine among <paramref name="machinesOfTenant"/>
    /// and no tunnel. Port forwards and tunnels go with the namespace.
    /// </summary>
    public async Task RemoveSegmentIfUnusedAsync(Guid tenantId, Func<int> machinesOfTenant)
    {
        using var _ = await LockAsync(tenantId);
        if (machinesOfTenant() == 0 && Tunnels().All(t => t.TenantId != tenantId))
        {
            await TenantSegment.Open(SegmentOf(tenantId)).DeleteAsync();
        }
    }

    /// <summary>
    /// After a restart: tunnels that no record explains are detached, and segments of tenants with neither a machine
    /// (<paramref name="tenantsWithMachines"/>) nor a tunnel are removed.
    /// </summary>
    public async Task ReconcileAsync(IReadOnlySet<Guid> tenantsWithMachines)
    {
        var recorded = Tunnels();
        var wanted = recorded.Select(r => r.Interface).ToHashSet();
        var keep = tenantsWithMachines.Concat(recorded.Select(r => r.TenantId)).Select(SegmentOf).ToHashSet();
        foreach (var segment in await NetworkNamespace.ListAsync(TenantSegment.PrefixOf(host.HostId)))
        {
            if (!keep.Contains(segment))
            {
                logger.LogWarning("Removing segment {Segment}: no machine or tunnel of this host is in it", segment);
                await TenantSegment.Open(segment).DeleteAsync();
                continue;
            }

            foreach (var leftover in (await WireGuardTunnel.ListAsync(segment)).Where(i => !wanted.Contains(i)))
            {
                logger.LogWarning("Removing tunnel interface {Interface} from {Segment}: no tunnel of this host is it", leftover, segment);
                await WireGuardTunnel.DetachAsync(segment, leftover);
            }
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

    private sealed class Held(SemaphoreSlim gate) : IDisposable
    {
        public void Dispose() => gate.Release();
    }

    private sealed record TunnelRecord(Guid MachineId, Guid TenantId, string Segment, string Interface);
}
