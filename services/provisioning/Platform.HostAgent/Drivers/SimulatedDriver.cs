using Platform.Contracts.Provisioning;

namespace Platform.HostAgent.Drivers;

/// <summary>
/// Machines that run nothing: a launch takes <see cref="SimulatedOptions.LaunchLatencyMs"/> and fails at
/// <see cref="SimulatedOptions.FailureRate"/>, or always when the machine's command is <see cref="FailLaunchCommand"/>.
/// For load and chaos tests of the control plane; a host offers it only when configured to, and no request gets it
/// without naming it.
/// </summary>
public sealed class SimulatedDriver(SimulatedOptions options, IReadOnlyList<TemplateOnHost> templates) : IMachineDriver
{
    /// <summary>The command that makes a simulated machine's launch fail, to prove what a failed launch undoes.</summary>
    public const string FailLaunchCommand = "simulated-launch-failure";

    public DriverCapacity Capacity { get; } = new("simulated", "any", MaxVcpus: 64, MinMemoryMiB: 16, MaxMemoryMiB: 1024 * 1024, MaxDiskMiB: 1024 * 1024);

    public string? Accelerator => null;

    public IReadOnlyList<TemplateOnHost> Templates => templates;

    public async Task<IRunningMachine> LaunchAsync(LaunchMachine launch, CancellationToken cancellationToken)
    {
        await Task.Delay(TimeSpan.FromMilliseconds(options.LaunchLatencyMs), cancellationToken);
        if (launch.Command is [FailLaunchCommand, ..])
        {
            throw new LaunchFailedException("simulated launch failure (the machine's command asked for one)");
        }

        if (Random.Shared.NextDouble() < options.FailureRate)
        {
            throw new LaunchFailedException($"simulated launch failure (the simulated driver fails {options.FailureRate:P0} of launches)");
        }

        return new SimulatedMachine(launch.Network);
    }

    /// <summary>A simulated machine lives in the agent's memory: nothing of it outlives the agent.</summary>
    public Task<IRunningMachine?> AdoptAsync(LaunchMachine launch, CancellationToken cancellationToken) => Task.FromResult<IRunningMachine?>(null);

    public Task RemoveLeftoversAsync(Guid machineId, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task CleanUpAsync(Guid machineId, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Given its network as networking leased it, though nothing is plugged in.</summary>
    private sealed class SimulatedMachine(NetworkAttachment? network) : IRunningMachine, ISnapshottableMachine
    {
        /// <summary>Nothing to save: the snapshot is a record only, for the control plane's flows.</summary>
        public Task<SavedSnapshot> SaveSnapshotAsync(string directory, CancellationToken cancellationToken) => Task.FromResult(new SavedSnapshot("simulated", 0));

        private readonly TaskCompletionSource<MachineExit> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public NetworkAttachment? Network => network;

        public string? Accelerator => null;

        public string BootedFrom => "cold";

        public Task<MachineExit> Exited => _exited.Task;

        public Task StopAsync(CancellationToken cancellationToken)
        {
            _exited.TrySetResult(new MachineExit(0, "stopped"));
            return Task.CompletedTask;
        }

        public ValueTask DisposeAsync()
        {
            _exited.TrySetResult(new MachineExit(0, "stopped"));
            return ValueTask.CompletedTask;
        }
    }
}

public sealed class SimulatedOptions
{
    public double LaunchLatencyMs { get; set; } = 50;

    public double FailureRate { get; set; }
}
