using System.Collections.Concurrent;
using System.Diagnostics;
using MassTransit;
using Platform.Contracts.Networking;
using Platform.Contracts.Provisioning;
using Platform.HostAgent.Drivers;
using Platform.HostAgent.Guests;
using Platform.HostAgent.Networking;

namespace Platform.HostAgent;

/// <summary>
/// The machines running on this host, and the one place that launches, halts and tears them down. Each
/// command is idempotent (a repeat reports the current fact again) and one machine's commands arrive one
/// at a time. A machine that ends without being asked to is reported as exited.
/// </summary>
public sealed class HostMachines(
    IEnumerable<IMachineDriver> drivers, MachineRecords records, LocalAddresses addresses, TenantNetworks networks, HostIdentity host, IBus bus, KeptLogs keptLogs,
    HostSnapshots snapshots, ILogger<HostMachines> logger)
{
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(10);
    private readonly Dictionary<string, IMachineDriver> _drivers = drivers.ToDictionary(d => d.Capacity.Name);
    private readonly ConcurrentDictionary<Guid, Running> _running = new();
    // Commands wait for the machines a previous run left to be adopted: a halt handled before would miss its machine.
    private readonly TaskCompletionSource _reconciled = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public IReadOnlyCollection<IMachineDriver> Drivers => _drivers.Values;

    /// <summary>The machines running now (not paused), each with what it was launched as: what the agent samples and probes.</summary>
    public IReadOnlyList<(LaunchMachine Launch, IRunningMachine Machine)> RunningMachines =>
        _running.Values.Where(r => r.Machine is not IPausableMachine { IsPaused: true }).Select(r => (r.Launch, r.Machine)).ToList();

    /// <summary>The machine, with what it was launched as, when it runs on this host now.</summary>
    public (LaunchMachine Launch, IRunningMachine Machine)? Find(Guid machineId) =>
        _running.TryGetValue(machineId, out var running) ? (running.Launch, running.Machine) : null;

    public async Task LaunchAsync(LaunchMachine launch, CancellationToken cancellationToken)
    {
        await _reconciled.Task.WaitAsync(cancellationToken);
        // The record holds the last launch this host began. When that was this fresh launch, what the machine kept is
        // discarded already: a copy of the command must not discard the run it started.
        var discard = launch.Fresh && records.Find(launch.MachineId)?.Launch.OperationId != launch.OperationId;
        if (!discard && _running.TryGetValue(launch.MachineId, out var already))
        {
            await PublishAsync(Launched(launch, already, 0));
            return;
        }

        if (records.WasTornDown(launch.MachineId))
        {
            // A copy of a launch that arrived after the machine was torn down: running it would leave an orphan.
            await PublishAsync(new MachineLaunchFailed(launch.MachineId, launch.TenantId, launch.OperationId, host.HostId, "the machine was torn down on this host already"));
            return;
        }

        if (!_drivers.TryGetValue(launch.Driver, out var driver))
        {
            await PublishAsync(new MachineLaunchFailed(launch.MachineId, launch.TenantId, launch.OperationId, host.HostId, $"host {host.Name} has no {launch.Driver} driver"));
            return;
        }

        if (discard && !await DiscardAsync(launch, driver, cancellationToken))
        {
            return;
        }

        records.Save(new MachineRecord(launch, Running: true));
        var clock = Stopwatch.StartNew();
        IRunningMachine machine;
        try
        {
            machine = await driver.LaunchAsync(launch, cancellationToken);
        }
        catch (LaunchFailedException failed)
        {
            records.Save(new MachineRecord(launch, Running: false));
            await PublishAsync(new MachineLaunchFailed(launch.MachineId, launch.TenantId, launch.OperationId, host.HostId, failed.Message));
            return;
        }

        var running = new Running(launch, machine);
        _running[launch.MachineId] = running;
        _ = SuperviseAsync(running);
        logger.LogInformation("Machine {MachineId} ({Driver}) running after {Milliseconds:0.0} ms", launch.MachineId, launch.Driver, clock.Elapsed.TotalMilliseconds);
        await PublishAsync(Launched(launch, running, clock.Elapsed.TotalMilliseconds));
    }

    public async Task HaltAsync(HaltMachine halt, CancellationToken cancellationToken)
    {
        await _reconciled.Task.WaitAsync(cancellationToken);
        await StopAndRecordAsync(halt.MachineId, cancellationToken);
        await PublishAsync(new MachineHalted(halt.MachineId, halt.TenantId, halt.OperationId, host.HostId));
    }

    /// <summary>
    /// Pauses the running machine in place; a repeat of the command, or one for a machine paused already, reports it paused
    /// again. A machine that is not running here, or whose driver cannot pause, is reported as not paused, with why.
    /// </summary>
    public async Task PauseAsync(PauseMachine pause, CancellationToken cancellationToken)
    {
        await _reconciled.Task.WaitAsync(cancellationToken);
        await ChangePauseAsync(pause.MachineId, pause.TenantId, pause.OperationId, paused: true, cancellationToken);
    }

    /// <summary>Lets the paused machine run again; a repeat, or one for a machine running already, reports it running again.</summary>
    public async Task ResumeAsync(ResumeMachine resume, CancellationToken cancellationToken)
    {
        await _reconciled.Task.WaitAsync(cancellationToken);
        await ChangePauseAsync(resume.MachineId, resume.TenantId, resume.OperationId, paused: false, cancellationToken);
    }

    private async Task ChangePauseAsync(Guid machineId, Guid tenantId, Guid operationId, bool paused, CancellationToken cancellationToken)
    {
        var what = paused ? "paused" : "resumed";
        if (!_running.TryGetValue(machineId, out var running))
        {
            await PublishAsync(new MachineFreezeFailed(machineId, tenantId, operationId, host.HostId, $"it does not run on host {host.Name}"));
            return;
        }

        if (running.Machine is not IPausableMachine pausable)
        {
            await PublishAsync(new MachineFreezeFailed(machineId, tenantId, operationId, host.HostId, $"a {running.Launch.Driver} machine cannot be {what} on host {host.Name}"));
            return;
        }

        var clock = Stopwatch.StartNew();
        try
        {
            if (pausable.IsPaused != paused)
            {
                await (paused ? pausable.PauseAsync(cancellationToken) : pausable.ResumeAsync(cancellationToken));
            }
        }
        catch (Exception failed) when (!cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning(failed, "Machine {MachineId} ({Driver}) could not be {What}", machineId, running.Launch.Driver, what);
            await PublishAsync(new MachineFreezeFailed(machineId, tenantId, operationId, host.HostId, failed.Message));
            return;
        }

        var milliseconds = clock.Elapsed.TotalMilliseconds;
        logger.LogInformation("Machine {MachineId} ({Driver}) {What} in {Milliseconds:0.0} ms", machineId, running.Launch.Driver, what, milliseconds);
        if (paused)
        {
            await PublishAsync(new MachineFrozen(machineId, tenantId, operationId, host.HostId, milliseconds));
        }
        else
        {
            await PublishAsync(new MachineThawed(machineId, tenantId, operationId, host.HostId, milliseconds));
        }
    }

    /// <summary>
    /// Saves the running or paused machine as the snapshot; a repeat of the command, for a snapshot saved already, reports it
    /// saved again. A machine that does not run here, or whose driver cannot save it, is reported as not saved, with why.
    /// </summary>
    public async Task TakeSnapshotAsync(TakeSnapshot take, CancellationToken cancellationToken)
    {
        await _reconciled.Task.WaitAsync(cancellationToken);
        if (snapshots.Find(take.SnapshotId) is { } saved)
        {
            await PublishAsync(new SnapshotSaved(take.SnapshotId, take.MachineId, take.TenantId, host.HostId, saved.Contents, saved.SizeBytes, 0));
            return;
        }

        var refusal = !_running.TryGetValue(take.MachineId, out var running) ? $"it does not run on host {host.Name}"
            : running.Machine is not ISnapshottableMachine ? $"a {running.Launch.Driver} machine cannot be snapshotted on host {host.Name}"
            : null;
        if (refusal is not null)
        {
            await PublishAsync(new SnapshotNotSaved(take.SnapshotId, take.MachineId, take.TenantId, host.HostId, refusal));
            return;
        }

        var clock = Stopwatch.StartNew();
        var directory = snapshots.Prepare(take.SnapshotId);
        try
        {
            var snapshot = await ((ISnapshottableMachine)running!.Machine).SaveSnapshotAsync(directory, cancellationToken);
            snapshots.Finish(new SnapshotManifest(take.SnapshotId, take.MachineId, running.Launch.Driver, snapshot.Contents, snapshot.SizeBytes, DateTimeOffset.UtcNow));
            logger.LogInformation("Machine {MachineId} ({Driver}) saved as snapshot {SnapshotId} ({Bytes} bytes) in {Milliseconds:0.0} ms",
                take.MachineId, running.Launch.Driver, take.SnapshotId, snapshot.SizeBytes, clock.Elapsed.TotalMilliseconds);
            await PublishAsync(new SnapshotSaved(take.SnapshotId, take.MachineId, take.TenantId, host.HostId, snapshot.Contents, snapshot.SizeBytes, clock.Elapsed.TotalMilliseconds));
        }
        catch (Exception failed) when (!cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning(failed, "Machine {MachineId} ({Driver}) could not be saved as snapshot {SnapshotId}", take.MachineId, running!.Launch.Driver, take.SnapshotId);
            snapshots.Delete(take.SnapshotId);
            await PublishAsync(new SnapshotNotSaved(take.SnapshotId, take.MachineId, take.TenantId, host.HostId, failed.Message));
        }
    }

    /// <summary>Removes the snapshot, and what its driver keeps of it elsewhere (a container image); reports it removed, also when it was not here.</summary>
    public async Task RemoveSnapshotAsync(RemoveSnapshot remove, CancellationToken cancellationToken)
    {
        await _reconciled.Task.WaitAsync(cancellationToken);
        if (snapshots.Find(remove.SnapshotId) is { } manifest && _drivers.GetValueOrDefault(manifest.Driver) is IKeepsSnapshotsElsewhere keeper)
        {
            await keeper.RemoveSnapshotAsync(snapshots.DirectoryOf(remove.SnapshotId), cancellationToken);
        }

        snapshots.Delete(remove.SnapshotId);
        await PublishAsync(new SnapshotRemoved(remove.SnapshotId, remove.TenantId, host.HostId));
    }

    public async Task TearDownAsync(TearDownMachine tearDown, CancellationToken cancellationToken)
    {
        await _reconciled.Task.WaitAsync(cancellationToken);
        await StopAsync(tearDown.MachineId, cancellationToken);
        if (records.Find(tearDown.MachineId) is { } record && _drivers.TryGetValue(record.Launch.Driver, out var driver))
        {
            await driver.CleanUpAsync(tearDown.MachineId, cancellationToken);
        }

        addresses.Release(tearDown.MachineId);
        records.Forget(tearDown.MachineId);
        // Its forwards point at an address that is free now; networking hears they are closed.
        foreach (var forwardId in await networks.ClosePortForwardsOfAsync(tearDown.MachineId, tearDown.TenantId))
        {
            await PublishAsync(new PortForwardClosed(forwardId, tearDown.MachineId, tearDown.TenantId, host.HostId));
        }

        await networks.RemoveSegmentIfUnusedAsync(tearDown.TenantId, () => records.All().Count(r => r.Launch.TenantId == tearDown.TenantId));
        await PublishAsync(new MachineTornDown(tearDown.MachineId, tearDown.TenantId, tearDown.OperationId, host.HostId));
    }

    /// <summary>
    /// Before a fresh launch: stops the machine if it runs and has the driver remove what it kept between runs. The machine
    /// stays this host's (its record, its address, its forwards and tunnel). False, after reporting the launch failed,
    /// when the driver could not.
    /// </summary>
    private async Task<bool> DiscardAsync(LaunchMachine launch, IMachineDriver driver, CancellationToken cancellationToken)
    {
        await StopAndRecordAsync(launch.MachineId, cancellationToken);
        try
        {
            await driver.CleanUpAsync(launch.MachineId, cancellationToken);
            logger.LogInformation("Machine {MachineId} ({Driver}): what it kept on the host is discarded for a fresh launch", launch.MachineId, launch.Driver);
            return true;
        }
        catch (Exception failed) when (!cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning(failed, "Machine {MachineId} ({Driver}): what it kept on the host could not be discarded", launch.MachineId, launch.Driver);
            await PublishAsync(new MachineLaunchFailed(launch.MachineId, launch.TenantId, launch.OperationId, host.HostId,
                $"what the machine kept on host {host.Name} could not be discarded: {failed.Message}"));
            return false;
        }
    }

    /// <summary>
    /// After the agent restarted: each machine its record says should be running and that still runs is adopted and
    /// supervised again, with nothing reported (to the control plane it never stopped). Whatever is left of one that is
    /// gone is removed, and it is reported exited, so its owner sees it failed and can start it again.
    /// </summary>
    public async Task ReconcileAsync(CancellationToken cancellationToken)
    {
        try
        {
            await AdoptOrReportAsync(cancellationToken);
        }
        finally
        {
            _reconciled.TrySetResult();
        }
    }

    private async Task AdoptOrReportAsync(CancellationToken cancellationToken)
    {
        records.PruneTombstones(DateTime.UtcNow);
        foreach (var record in records.All().Where(r => r.Running && !_running.ContainsKey(r.Launch.MachineId)))
        {
            var launch = record.Launch;
            if (!_drivers.TryGetValue(launch.Driver, out var driver))
            {
                records.Save(record with { Running = false });
                await PublishAsync(new MachineExited(launch.MachineId, launch.TenantId, host.HostId, null, $"the host agent restarted without its {launch.Driver} driver"));
                continue;
            }

            IRunningMachine? adopted;
            try
            {
                adopted = await driver.AdoptAsync(launch, cancellationToken);
            }
            catch (Exception failed) when (!cancellationToken.IsCancellationRequested)
            {
                logger.LogWarning(failed, "Machine {MachineId} ({Driver}) could not be adopted", launch.MachineId, launch.Driver);
                adopted = null;
            }

            if (adopted is not null)
            {
                var running = new Running(launch, adopted);
                _running[launch.MachineId] = running;
                _ = SuperviseAsync(running);
                logger.LogInformation("Machine {MachineId} ({Driver}) still runs: adopted", launch.MachineId, launch.Driver);
                continue;
            }

            logger.LogWarning("Machine {MachineId} ({Driver}) ended while the host agent was not running", launch.MachineId, launch.Driver);
            await driver.RemoveLeftoversAsync(launch.MachineId, cancellationToken);
            records.Save(record with { Running = false });
            await PublishAsync(new MachineExited(launch.MachineId, launch.TenantId, host.HostId, null, "it ended while the host agent was not running"));
        }
    }

    /// <summary>After the machines: forwards, tunnels and segments that no record explains.</summary>
    public Task ReconcileNetworksAsync()
    {
        var all = records.All();
        return networks.ReconcileAsync(all.Select(r => r.Launch.MachineId).ToHashSet(), all.Select(r => r.Launch.TenantId).ToHashSet());
    }

    /// <summary>
    /// Stops every machine and removes what each kept on the host (<c>./platform down --machines</c>): their records stay,
    /// still saying running, so that the next start finds them gone and reports them exited.
    /// </summary>
    public async Task RemoveAllAsync()
    {
        foreach (var machineId in _running.Keys)
        {
            try
            {
                await StopAsync(machineId, CancellationToken.None);
            }
            catch (Exception failed)
            {
                // One machine that cannot be stopped must not keep the others running: its cleanup below kills what is left.
                logger.LogWarning(failed, "Machine {MachineId} could not be stopped", machineId);
            }
        }

        // Read once: every record is a file, and nothing adds one while the agent stops.
        var all = records.All();
        foreach (var record in all)
        {
            if (_drivers.TryGetValue(record.Launch.Driver, out var driver))
            {
                try
                {
                    await driver.CleanUpAsync(record.Launch.MachineId, CancellationToken.None);
                }
                catch (Exception failed)
                {
                    logger.LogWarning(failed, "Machine {MachineId} ({Driver}): what it kept on the host could not be removed", record.Launch.MachineId, record.Launch.Driver);
                }
            }

            // Networking hears of these when the next start reports the machine exited and its owner destroys it.
            await networks.RemoveTunnelAsync(record.Launch.MachineId);
            await networks.ClosePortForwardsOfAsync(record.Launch.MachineId, record.Launch.TenantId);
            logger.LogInformation("Machine {MachineId} ({Driver}) removed from the host", record.Launch.MachineId, record.Launch.Driver);
        }

        foreach (var tenantId in all.Select(r => r.Launch.TenantId).Distinct())
        {
            await networks.RemoveSegmentIfUnusedAsync(tenantId, () => 0);
        }

        logger.LogInformation("Every machine of this host is removed ({Count})", all.Count);
    }

    /// <summary>Stops the machine if it runs, and records that it should not be running.</summary>
    private async Task StopAndRecordAsync(Guid machineId, CancellationToken cancellationToken)
    {
        await StopAsync(machineId, cancellationToken);
        if (records.Find(machineId) is { } record)
        {
            records.Save(record with { Running = false });
        }
    }

    private async Task StopAsync(Guid machineId, CancellationToken cancellationToken)
    {
        if (!_running.TryRemove(machineId, out var running))
        {
            return;
        }

        using var grace = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        grace.CancelAfter(StopGrace);
        try
        {
            await running.Machine.StopAsync(grace.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning("Machine {MachineId} did not stop within {Grace}; killing it", machineId, StopGrace);
        }

        await LetGoAsync(running);
    }

    private async Task SuperviseAsync(Running running)
    {
        var exit = await running.Machine.Exited;
        // Removed already when it was asked to stop: that is a halt, not an exit.
        if (!_running.TryRemove(new KeyValuePair<Guid, Running>(running.Launch.MachineId, running)))
        {
            return;
        }

        await LetGoAsync(running);
        if (records.Find(running.Launch.MachineId) is { } record)
        {
            records.Save(record with { Running = false });
        }

        logger.LogWarning("Machine {MachineId} exited by itself: {Reason}", running.Launch.MachineId, exit.Reason);
        await PublishAsync(new MachineExited(running.Launch.MachineId, running.Launch.TenantId, host.HostId, exit.ExitCode, exit.Reason));
    }

    /// <summary>Its logs stay readable for a while (<see cref="KeptLogs"/>); the rest of it goes.</summary>
    private async Task LetGoAsync(Running running)
    {
        await keptLogs.KeepAsync(running.Launch.MachineId, running.Launch.TenantId, running.Machine);
        await running.Machine.DisposeAsync();
    }

    private MachineLaunched Launched(LaunchMachine launch, Running running, double milliseconds) => new(
        launch.MachineId, launch.TenantId, launch.OperationId, host.HostId, running.Machine.Network, running.Machine.Accelerator, running.Machine.BootedFrom, milliseconds);

    private Task PublishAsync<T>(T report) where T : class => bus.Publish(report);

    private sealed record Running(LaunchMachine Launch, IRunningMachine Machine);
}
