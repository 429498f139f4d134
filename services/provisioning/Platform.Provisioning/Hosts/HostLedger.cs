using System.Collections.Immutable;
using Platform.Contracts.Provisioning;
using Platform.Contracts.Tenancy;

namespace Platform.Provisioning.Hosts;

/// <summary>
/// A host and what is placed on it, folded from its stream <c>host-{id}</c>. Placement appends to this stream
/// with its expected version, so two requests racing for the last room on a host cannot both win.
/// </summary>
public sealed record HostLedger(HostRegistered Host, ImmutableDictionary<Guid, MachineShape> Placed)
{
    public static string StreamOf(Guid hostId) => $"host-{hostId}";

    public static HostLedger Evolve(HostLedger? ledger, object @event) => (ledger, @event) switch
    {
        (null, HostRegistered registered) => new HostLedger(registered, ImmutableDictionary<Guid, MachineShape>.Empty),
        (not null, HostRegistered registered) => ledger with { Host = registered },
        (not null, MachinePlaced placed) => ledger with { Placed = ledger.Placed.SetItem(placed.MachineId, placed.Shape) },
        (not null, MachineUnplaced unplaced) => ledger with { Placed = ledger.Placed.Remove(unplaced.MachineId) },
        _ => ledger ?? throw new InvalidOperationException($"A host stream must begin with {nameof(HostRegistered)}."),
    };

    public int UsedMemoryMiB => Placed.Values.Sum(s => s.MemoryMiB);

    public int UsedVcpus => Placed.Values.Sum(s => s.Vcpus);

    /// <summary>Why this host cannot take <paramref name="shape"/> under <paramref name="guardrails"/>, or null when it can.</summary>
    public string? Refusal(MachineShape shape, HostGuardrails guardrails)
    {
        if (Placed.Count + 1 > guardrails.MaxMachinesPerHost)
        {
            return $"host {Host.Name} runs {Placed.Count} machines, the most a host may run (maxMachinesPerHost {guardrails.MaxMachinesPerHost})";
        }

        var memoryForMachines = Host.MemoryMiB - guardrails.ReservedHostMemoryMiB;
        if (UsedMemoryMiB + shape.MemoryMiB > memoryForMachines)
        {
            return $"host {Host.Name} has {Math.Max(0, memoryForMachines - UsedMemoryMiB)} MiB of memory left for machines ({guardrails.ReservedHostMemoryMiB} MiB reserved for the host), {shape.MemoryMiB} MiB asked";
        }

        var vcpuLimit = (int)Math.Floor(Host.Vcpus * guardrails.MaxVcpuOvercommit);
        if (UsedVcpus + shape.Vcpus > vcpuLimit)
        {
            return $"host {Host.Name} has {Math.Max(0, vcpuLimit - UsedVcpus)} vCPUs left ({Host.Vcpus} cores, overcommit {guardrails.MaxVcpuOvercommit}), {shape.Vcpus} asked";
        }

        return null;
    }
}
