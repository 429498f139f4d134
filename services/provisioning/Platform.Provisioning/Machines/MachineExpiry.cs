using System.Collections.Concurrent;
using System.Text.Json;
using MassTransit;
using Npgsql;
using NpgsqlTypes;
using Platform.Contracts;
using Platform.Contracts.Provisioning;
using Platform.Contracts.Telemetry;
using Platform.EventSourcing;
using Platform.Hosting;
using Platform.Hosting.Startup;

namespace Platform.Provisioning.Machines;

/// <summary>What counts as a machine's real work, and how often its lifecycle is looked at, section <c>Platform:Provisioning:Lifecycle</c>.</summary>
public sealed class MachineExpiryOptions
{
    public const string Section = "Platform:Provisioning:Lifecycle";

    /// <summary>How often the machines' time-to-live and idleness are looked at.</summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long before it acts a machine's <c>MachineExpiring</c> goes out (at most half its time-to-live or idle time).</summary>
    public TimeSpan Warning { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>CPU use (cores, averaged over a metrics interval) above which a machine is at work.</summary>
    public double BusyCpuCores { get; set; } = 0.02;

    /// <summary>
    /// Network traffic (bytes a second, both ways) above which a machine is at work: above what its health probes and
    /// heartbeats take.
    /// </summary>
    public long BusyNetworkBytesPerSecond { get; set; } = 2048;

    public static MachineExpiryOptions Read(IConfiguration configuration)
    {
        var options = configuration.GetSection(Section).Get<MachineExpiryOptions>() ?? new MachineExpiryOptions();
        if (options.SweepInterval <= TimeSpan.Zero || options.SweepInterval > TimeSpan.FromMinutes(1))
        {
            throw new StartupException($"{Section}:SweepInterval must be positive and at most a minute.");
        }

        if (options.Warning < TimeSpan.Zero || options.Warning > TimeSpan.FromDays(1))
        {
            throw new StartupException($"{Section}:Warning must be between 0 and a day.");
        }

        if (options.BusyCpuCores is < 0 or > 64 || options.BusyNetworkBytesPerSecond < 0)
        {
            throw new StartupException($"{Section}:BusyCpuCores must be between 0 and 64 and BusyNetworkBytesPerSecond not negative.");
        }

        return options;
    }
}

/// <summary>
/// The last real work seen in each machine: CPU or network use above the thresholds, or commands run through the API still
/// running (from its host's metrics), and API access to what is inside it (exec, processes, files, logs). A reading kept
/// beside the machines, not an event: that a machine worked changes nothing about it until its idleness is judged.
/// </summary>
public sealed class MachineWork(NpgsqlDataSource dataSource, EventStore store, MachineExpiryOptions options)
{
    public static SchemaMigration Migration { get; } = new("machine_work", 1, """
        CREATE TABLE {schema}.machine_work (
            machine_id uuid PRIMARY KEY,
            last_work_at timestamptz NOT NULL,
            why text NOT NULL
        );
        """);

    /// <summary>API access noted since the last flush: written by the sweeper, so that a request costs no statement.</summary>
    private readonly ConcurrentDictionary<Guid, DateTimeOffset> _accessed = new();

    /// <summary>Someone reached inside the machine through the API.</summary>
    public void NoteAccess(Guid machineId, DateTimeOffset at) => _accessed.AddOrUpdate(machineId, at, (_, before) => before > at ? before : at);

    /// <summary>What of a host's report counts as work: a machine busy on CPU or network, or running commands.</summary>
    public IEnumerable<(Guid MachineId, DateTimeOffset At, string Why)> WorkIn(MachineMetricsReported report)
    {
        foreach (var sample in report.Machines)
        {
            var bytesPerSecond = (sample.NetworkRxBytes + sample.NetworkTxBytes) / Math.Max(1, report.IntervalSeconds);
            var why = sample.RunningCommands > 0 ? "commands"
                : sample.CpuCores > options.BusyCpuCores ? "cpu"
                : bytesPerSecond > options.BusyNetworkBytesPerSecond ? "network"
                : null;
            if (why is not null)
            {
                yield return (sample.MachineId, report.SampledAt, why);
            }
        }
    }

    public async Task RecordAsync(IEnumerable<(Guid MachineId, DateTimeOffset At, string Why)> work, CancellationToken cancellationToken)
    {
        await using var batch = dataSource.CreateBatch();
        foreach (var (machineId, at, why) in work)
        {
            batch.BatchCommands.Add(new NpgsqlBatchCommand($"""
                INSERT INTO {store.Schema}.machine_work (machine_id, last_work_at, why) VALUES ($1, $2, $3)
                ON CONFLICT (machine_id) DO UPDATE SET last_work_at = excluded.last_work_at, why = excluded.why
                WHERE {store.Schema}.machine_work.last_work_at < excluded.last_work_at
                """)
            {
                Parameters = { new() { Value = machineId }, new() { Value = at, NpgsqlDbType = NpgsqlDbType.TimestampTz }, new() { Value = why } },
            });
        }

        if (batch.BatchCommands.Count > 0)
        {
            await batch.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    /// <summary>Writes the API access noted since the last flush.</summary>
    public Task FlushAsync(CancellationToken cancellationToken)
    {
        var accessed = new List<(Guid, DateTimeOffset, string)>();
        foreach (var machineId in _accessed.Keys)
        {
            if (_accessed.TryRemove(machineId, out var at))
            {
                accessed.Add((machineId, at, "api"));
            }
        }

        return RecordAsync(accessed, cancellationToken);
    }
}

/// <summary>Takes in what counts as work from every host's metrics report.</summary>
public sealed class MachineWorkConsumer(MachineWork work) : IConsumer<MachineMetricsReported>
{
    public Task Consume(ConsumeContext<MachineMetricsReported> context) => work.RecordAsync(work.WorkIn(context.Message), context.CancellationToken);
}

/// <summary>
/// Every <see cref="MachineExpiryOptions.SweepInterval"/>, looks at each machine with a lifecycle policy and has it decide
/// (<see cref="Machine.DecideExpiry"/>) whether to warn or act. Everything it goes by is stored (the machine's events, the work
/// table), so a restarted provisioning goes on where the last one was; the decision appends with the machine's version, so
/// that however many instances sweep, a machine is warned and acted on once.
/// </summary>
public sealed class MachineExpirySweeper(
    NpgsqlDataSource dataSource, EventStore store, IEventStreams streams, MachineWork work, MachineExpiryOptions options, TimeProvider time, ILogger<MachineExpirySweeper> logger)
    : PeriodicWork(time, logger)
{
    public const string Actor = "service:provisioning-lifecycle";

    protected override TimeSpan Interval => options.SweepInterval;

    protected override string What => "look at the machines' lifecycles";

    protected override Task RunOnceAsync(CancellationToken cancellationToken) => SweepAsync(cancellationToken);

    public async Task SweepAsync(CancellationToken cancellationToken)
    {
        await work.FlushAsync(cancellationToken);
        var now = Time.GetUtcNow();
        foreach (var (machine, lastWorkAt) in await CandidatesAsync(cancellationToken))
        {
            // Decided on the catalog's copy first: most machines have nothing due, and those cost no load of their stream.
            if (machine.DecideExpiry(now, lastWorkAt, options.Warning, Guid.Empty).Count == 0)
            {
                continue;
            }

            var operationId = Guid.CreateVersion7();
            var decided = await streams.DecideAsync<Machine>(Machine.StreamOf(machine.Id), Machine.Evolve,
                current => current?.DecideExpiry(Time.GetUtcNow(), lastWorkAt, options.Warning, operationId) ?? [],
                new EventMetadata(TenantId: machine.TenantId.ToString(), Actor: Actor), cancellationToken);
            foreach (var expired in decided.OfType<MachineExpired>())
            {
                Logger.LogInformation("Machine {MachineId} expired ({Reason}): {Action} requested", machine.Id, expired.Reason, expired.Action);
            }
        }
    }

    private async Task<IReadOnlyList<(Machine Machine, DateTimeOffset? LastWorkAt)>> CandidatesAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            SELECT m.machine, w.last_work_at FROM {store.Schema}.machines m
            LEFT JOIN {store.Schema}.machine_work w ON w.machine_id = m.id
            WHERE m.state NOT IN ('creating', 'destroying', 'destroyed') AND m.machine ? 'lifecycle'
            """);
        var candidates = new List<(Machine, DateTimeOffset?)>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            candidates.Add((JsonSerializer.Deserialize<Machine>(reader.GetString(0), PlatformJson.Options)!,
                reader.IsDBNull(1) ? null : reader.GetFieldValue<DateTimeOffset>(1)));
        }

        return candidates;
    }
}
