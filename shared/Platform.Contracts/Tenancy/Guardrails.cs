namespace Platform.Contracts.Tenancy;

/// <summary>
/// Limits every host keeps, whatever tenants ask for: memory held back for the host itself, how many
/// machines one host runs, how far vCPUs may be overcommitted (2.0 = twice the host's cores), and disk held back for
/// the host (machines' disks are counted at their full size against the rest of the host's machine disk).
/// Edited in tenancy, enforced by provisioning's placement.
/// </summary>
public sealed record HostGuardrails(int ReservedHostMemoryMiB, int MaxMachinesPerHost, double MaxVcpuOvercommit, int ReservedHostDiskMiB = HostGuardrails.DefaultReservedHostDiskMiB)
{
    public const int DefaultReservedHostDiskMiB = 8 * 1024;

    /// <summary>What holds until a platform-admin sets them (and a deployment's configuration does not say otherwise).</summary>
    public static HostGuardrails Default { get; } = new(ReservedHostMemoryMiB: 1024, MaxMachinesPerHost: 64, MaxVcpuOvercommit: 4.0);
}

public sealed record HostGuardrailsSet(HostGuardrails Guardrails, DateTimeOffset SetAt) : IIntegrationEvent;
