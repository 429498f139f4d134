namespace Platform.Provisioning.Machines.Saga;

/// <summary>From the deadline sweeper: the machine's flow has waited past its step's deadline (attempt <paramref name="Attempt"/>).</summary>
public sealed record MachineStepOverdue(Guid MachineId, string Step, int Attempt);
