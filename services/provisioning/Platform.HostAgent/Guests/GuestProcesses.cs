using System.Collections.Concurrent;
using MassTransit;
using Platform.Contracts.Provisioning;
using Platform.Hosting.Problems;
using Platform.Provisioning.Drivers.Guests;

namespace Platform.HostAgent.Guests;

/// <summary>
/// The processes callers run inside this host's machines: started through the machine's driver, listed per machine,
/// kept readable for a while after they end, and each reported to provisioning when it ends (what ran, not its output).
/// </summary>
public sealed class GuestProcesses(GuestOptions options, HostIdentity host, GuestReports reports, TimeProvider time, ILogger<GuestProcesses> logger)
{
    private readonly ConcurrentDictionary<Guid, GuestProcess> _processes = new();

    public async Task<GuestProcess> StartAsync(Guid machineId, Guid tenantId, IGuestAccess machine, GuestCommand command, TimeSpan timeout, bool background, string actor, CancellationToken cancellationToken)
    {
        Prune();
        var running = _processes.Values.Count(p => p.MachineId == machineId && p.EndedAt is null);
        if (running >= options.MaxProcessesPerMachine)
        {
            throw Problems.Conflict($"The machine runs {running} exec'd processes, the most it may ({options.MaxProcessesPerMachine}): wait for one to end or signal it.");
        }

        IGuestProcess started;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            started = await machine.StartAsync(command, cancellationToken);
        }
        catch (GuestException refused)
        {
            throw new ProblemException(ProblemTypes.ValidationFailed, StatusCodes.Status422UnprocessableEntity, "The command cannot run.", refused.Message);
        }

        var process = new GuestProcess(Guid.CreateVersion7(), machineId, tenantId, command, actor, background, started, options.MaxOutputBytesPerProcess, time.GetUtcNow(), clock);
        _processes[process.Id] = process;
        process.Run(timeout, time, ReportAsync);
        return process;
    }

    public IReadOnlyList<GuestProcess> Of(Guid machineId)
    {
        Prune();
        return _processes.Values.Where(p => p.MachineId == machineId).OrderBy(p => p.StartedAt).ToList();
    }

    public GuestProcess? Find(Guid machineId, Guid processId) =>
        _processes.TryGetValue(processId, out var process) && process.MachineId == machineId ? process : null;

    private async Task ReportAsync(GuestProcess process)
    {
        try
        {
            await reports.PublishAsync(new GuestCommandEnded(process.MachineId, process.TenantId, host.HostId, process.Id, process.Command.Argv, process.Command.User,
                process.ExitCode ?? -1, Math.Round(process.Duration.TotalMilliseconds, 1), process.TimedOut, process.Actor, process.EndedAt ?? time.GetUtcNow()));
        }
        catch (Exception exception)
        {
            logger.LogWarning(exception, "The end of process {ProcessId} in machine {MachineId} could not be reported", process.Id, process.MachineId);
        }
    }

    private void Prune()
    {
        var before = time.GetUtcNow() - options.KeepEndedFor;
        foreach (var ended in _processes.Values.Where(p => p.EndedAt is { } end && end < before))
        {
            _processes.TryRemove(ended.Id, out _);
        }
    }
}
