namespace Platform.Contracts.Telemetry;

/// <summary>
/// How the watchdog heals a tenant's machines that fail: start them again up to <paramref name="MaxAttempts"/>
/// times, waiting <paramref name="InitialBackoffSeconds"/> before the first and twice as long before each next
/// (at most <paramref name="MaxBackoffSeconds"/>); a machine that has run <paramref name="ResetAfterSeconds"/>
/// without failing starts counting afresh. A tunnel that goes down is re-attached under the same count. With
/// <paramref name="RecreateOnExitAddressChange"/>, a machine whose exit node's public address changed is recreated from its
/// template (off by default: it discards what the machine kept). A machine labelled <c>healing: off</c> is never touched.
/// </summary>
public sealed record HealingPolicy(
    bool Enabled, int MaxAttempts, double InitialBackoffSeconds, double MaxBackoffSeconds, double ResetAfterSeconds, bool RecreateOnExitAddressChange = false)
{
    public static HealingPolicy Default { get; } = new(Enabled: true, MaxAttempts: 3, InitialBackoffSeconds: 2, MaxBackoffSeconds: 60, ResetAfterSeconds: 600);

    public TimeSpan BackoffBefore(int attempt) =>
        TimeSpan.FromSeconds(Math.Min(MaxBackoffSeconds, InitialBackoffSeconds * Math.Pow(2, Math.Max(0, attempt - 1))));
}

public sealed record HealingPolicySet(Guid TenantId, HealingPolicy Policy, DateTimeOffset SetAt) : IIntegrationEvent;

/// <summary>
/// The watchdog will act on the machine at <paramref name="DueAt"/>: attempt <paramref name="Attempt"/> for <paramref name="Reason"/>,
/// by <paramref name="Action"/> (as in <see cref="HealingAttempted"/>).
/// </summary>
public sealed record HealingRequested(Guid MachineId, Guid TenantId, int Attempt, string Reason, DateTimeOffset DueAt, string? Action = null) : IIntegrationEvent;

/// <summary>
/// The watchdog acted on the machine (operation or request <paramref name="OperationId"/>): <paramref name="Action"/> is
/// <c>start</c>, <c>restart</c>, <c>reattach-tunnel</c> or <c>recreate</c> (null in events recorded before actions were named: a start or restart).
/// </summary>
public sealed record HealingAttempted(Guid MachineId, Guid TenantId, int Attempt, Guid OperationId, DateTimeOffset AttemptedAt, string? Action = null) : IIntegrationEvent;

/// <summary>The machine kept failing: after <paramref name="Attempts"/> starts the watchdog leaves it failed.</summary>
public sealed record HealingAbandoned(Guid MachineId, Guid TenantId, int Attempts, string LastReason, DateTimeOffset AbandonedAt) : IIntegrationEvent;
