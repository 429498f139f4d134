namespace Platform.Contracts.Telemetry;

/// <summary>
/// How the watchdog heals a tenant's machines that fail: start them again up to <paramref name="MaxAttempts"/>
/// times, waiting <paramref name="InitialBackoffSeconds"/> before the first and twice as long before each next
/// (at most <paramref name="MaxBackoffSeconds"/>); a machine that has run <paramref name="ResetAfterSeconds"/>
/// without failing starts counting afresh. A machine labelled <c>healing: off</c> is never touched.
/// </summary>
public sealed record HealingPolicy(bool Enabled, int MaxAttempts, double InitialBackoffSeconds, double MaxBackoffSeconds, double ResetAfterSeconds)
{
    public static HealingPolicy Default { get; } = new(Enabled: true, MaxAttempts: 3, InitialBackoffSeconds: 2, MaxBackoffSeconds: 60, ResetAfterSeconds: 600);

    public TimeSpan BackoffBefore(int attempt) =>
        TimeSpan.FromSeconds(Math.Min(MaxBackoffSeconds, InitialBackoffSeconds * Math.Pow(2, Math.Max(0, attempt - 1))));
}

public sealed record HealingPolicySet(Guid TenantId, HealingPolicy Policy, DateTimeOffset SetAt) : IIntegrationEvent;

/// <summary>The watchdog will start the machine again at <paramref name="DueAt"/>: attempt <paramref name="Attempt"/> for <paramref name="Reason"/>.</summary>
public sealed record HealingRequested(Guid MachineId, Guid TenantId, int Attempt, string Reason, DateTimeOffset DueAt) : IIntegrationEvent;

/// <summary>The watchdog asked provisioning to start the machine (operation <paramref name="OperationId"/>).</summary>
public sealed record HealingAttempted(Guid MachineId, Guid TenantId, int Attempt, Guid OperationId, DateTimeOffset AttemptedAt) : IIntegrationEvent;

/// <summary>The machine kept failing: after <paramref name="Attempts"/> starts the watchdog leaves it failed.</summary>
public sealed record HealingAbandoned(Guid MachineId, Guid TenantId, int Attempts, string LastReason, DateTimeOffset AbandonedAt) : IIntegrationEvent;
