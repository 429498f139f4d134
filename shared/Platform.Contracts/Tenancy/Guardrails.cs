namespace Platform.Contracts.Tenancy;

/// <summary>
/// Limits every host keeps, whatever tenants ask for: memory held back for the host itself, how many
/// machines one host runs, and how far vCPUs may be overcommitted (2.0 = twice the host's cores).
/// Edited in tenancy, enforced by provisioning's placement.
/// </summary>
public sealed record HostGuardrails(int ReservedHostMemoryMiB, int MaxMachinesPerHost, double MaxVcpuOvercommit);

public sealed record HostGuardrailsSet(HostGuardrails Guardrails, DateTimeOffset SetAt) : IIntegrationEvent;
