using MassTransit;
using Platform.Contracts.Provisioning;
using Platform.Messaging.Sagas;

namespace Platform.Provisioning.Machines.Saga;

/// <summary>
/// One machine's creation or destruction in flight, kept by <see cref="MachineSaga"/> (correlated by machine id) until
/// the flow ends: <c>Ready</c> stays (a destroy starts from it), the end of a destroy or of a failed creation is final.
/// </summary>
public sealed class MachineSagaState : SagaStateMachineInstance, ISagaVersion
{
    /// <summary>The machine's id.</summary>
    public Guid CorrelationId { get; set; }

    public int Version { get; set; }

    public string CurrentState { get; set; } = "";

    public Guid TenantId { get; set; }

    /// <summary>The operation the flow serves: the create, then the destroy.</summary>
    public Guid OperationId { get; set; }

    public Guid HostId { get; set; }

    public Guid? ExitNodeId { get; set; }

    /// <summary>Who asked for the machine: its owner in the tenant's inventory.</summary>
    public string Owner { get; set; } = "";

    /// <summary>The step in progress, named as in <see cref="MachineStepCompleted"/>.</summary>
    public string Step { get; set; } = "";

    /// <summary>How many times the step's command was issued.</summary>
    public int Attempts { get; set; }

    /// <summary>When the step is overdue: its command is issued again, or (creation steps, attempts used up) the creation fails.</summary>
    public DateTimeOffset? Deadline { get; set; }

    /// <summary>What the flow may hold (a command was issued that takes it), in the order taken; given back in reverse.</summary>
    public List<string> Held { get; set; } = [];

    public NetworkAttachment? Network { get; set; }

    public MachineLaunched? Launched { get; set; }

    /// <summary>The machine's main process ended after it launched but before the creation was done: recorded once it is.</summary>
    public MachineExited? ExitedEarly { get; set; }

    public string? FailedStep { get; set; }

    public string? FailureReason { get; set; }
}
