using System.Collections.Immutable;
using Platform.Contracts.Tenancy;

namespace Platform.Tenancy.Quotas;

/// <summary>A tenant's quota, folded from its stream <c>quota-{tenantId}</c>: limits and what each machine holds.</summary>
public sealed record TenantQuota(QuotaResources Limits, ImmutableDictionary<Guid, QuotaResources> Reservations)
{
    /// <summary>Machines whose reservation was released: a late copy of their reservation must not take quota again.</summary>
    public ImmutableHashSet<Guid> Released { get; init; } = [];

    public static string StreamOf(Guid tenantId) => $"quota-{tenantId}";

    public QuotaResources Used => Reservations.Values.Aggregate(QuotaResources.None, (sum, r) => sum.Plus(r));

    public static TenantQuota Initial(QuotaResources defaults) => new(defaults, ImmutableDictionary<Guid, QuotaResources>.Empty);

    public TenantQuota Apply(object @event) => @event switch
    {
        QuotaLimitsSet set => this with { Limits = set.Limits },
        QuotaReserved reserved => this with { Reservations = Reservations.SetItem(reserved.MachineId, reserved.Reserved) },
        QuotaReleased released => this with { Reservations = Reservations.Remove(released.MachineId), Released = Released.Add(released.MachineId) },
        _ => this,
    };

    /// <summary>
    /// What a reservation decides: nothing new when the machine holds its share already (the command came
    /// again), otherwise reserved, or rejected naming the first limit it would break.
    /// </summary>
    public object? Decide(ReserveQuota command)
    {
        if (Reservations.ContainsKey(command.MachineId))
        {
            return null;
        }

        var check = Check(command.Requested);
        return check.Fits
            ? new QuotaReserved(command.MachineId, command.TenantId, command.Requested)
            : new QuotaRejected(command.MachineId, command.TenantId, check.Limit!, check.Used, check.Requested, check.Max);
    }

    /// <summary>Whether <paramref name="requested"/> fits beside what is held now; if not, the first limit it would break.</summary>
    public QuotaChecked Check(QuotaResources requested)
    {
        var used = Used.Named().ToDictionary(u => u.Name, u => u.Amount);
        var limits = Limits.Named().ToDictionary(l => l.Name, l => l.Amount);
        foreach (var (name, amount) in requested.Named())
        {
            if (amount > 0 && used[name] + amount > limits[name])
            {
                return new QuotaChecked(false, name, used[name], amount, limits[name]);
            }
        }

        return new QuotaChecked(true, null, 0, 0, 0);
    }

    /// <summary>
    /// What a release decides: what the machine holds given back; nothing held and never released, a release of
    /// nothing that is still recorded, so that a reservation still on its way (the flow gave up waiting for it)
    /// cannot take quota afterwards; released already, nothing new (the command came again).
    /// </summary>
    public QuotaReleased? Decide(ReleaseQuota command) =>
        Reservations.TryGetValue(command.MachineId, out var held) ? new QuotaReleased(command.MachineId, command.TenantId, held)
        : Released.Contains(command.MachineId) ? null
        : new QuotaReleased(command.MachineId, command.TenantId, QuotaResources.None);
}
