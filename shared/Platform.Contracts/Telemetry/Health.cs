namespace Platform.Contracts.Telemetry;

/// <summary>The health states telemetry folds a machine's checks into.</summary>
public static class HealthStates
{
    /// <summary>No check has reported since the machine last started (or it has none).</summary>
    public const string Unknown = "unknown";

    /// <summary>Every check passed its last run.</summary>
    public const string Healthy = "healthy";

    /// <summary>Some check is failing, fewer times in a row than the machine's <c>unhealthyAfter</c>.</summary>
    public const string Degraded = "degraded";

    /// <summary>Some check failed <c>unhealthyAfter</c> times in a row: the healing watchdog treats it like a failure.</summary>
    public const string Unhealthy = "unhealthy";
}

/// <summary>
/// A host agent's report of one check of a running machine (<c>heartbeat</c>, <c>tcp:8080</c>, <c>http:8080/healthz</c>):
/// sent when its result changes and after every failure, so <paramref name="ConsecutiveFailures"/> is always current.
/// A plain message; telemetry records the state it leads to as <see cref="MachineHealthChanged"/>.
/// </summary>
public sealed record MachineHealthReported(
    Guid MachineId, Guid TenantId, Guid HostId, string Check, bool Healthy, string? Detail, DateTimeOffset At, int ConsecutiveFailures);

/// <summary>The machine's health went to <paramref name="State"/> (a <see cref="HealthStates"/> value) because of <paramref name="Reason"/>.</summary>
public sealed record MachineHealthChanged(Guid MachineId, Guid TenantId, string State, string Reason, DateTimeOffset At) : IIntegrationEvent;
