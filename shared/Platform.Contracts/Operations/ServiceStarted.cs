namespace Platform.Contracts.Operations;

/// <summary>A service instance started: operators see restarts in the audit trail.</summary>
public sealed record ServiceStarted(
    string Service,
    string Version,
    Guid InstanceId,
    string HostName,
    DateTimeOffset StartedAt) : IIntegrationEvent;
