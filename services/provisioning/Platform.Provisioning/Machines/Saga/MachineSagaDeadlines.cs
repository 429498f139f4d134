using MassTransit;
using Npgsql;
using Platform.Hosting;
using Platform.Messaging.Sagas;

namespace Platform.Provisioning.Machines.Saga;

/// <summary>
/// Finds machine flows waiting past their step's deadline and tells each one (<see cref="MachineStepOverdue"/>); the
/// flow decides to issue the step again or to fail. Deadlines live in the flows' rows, so they survive restarts, and any
/// number of provisioning instances may sweep: a flow acts on one notice per attempt.
/// </summary>
public sealed class MachineSagaDeadlines(NpgsqlDataSource dataSource, SagaStore sagas, IBus bus, MachineSagaOptions options, TimeProvider time, ILogger<MachineSagaDeadlines> logger)
    : PeriodicWork(time, logger)
{
    private const int Batch = 200;

    /// <summary>Notices sent and not yet acted on, so that a flow is not told every sweep while its notice is on the way.</summary>
    private readonly Dictionary<(Guid Machine, string Step, int Attempt), DateTimeOffset> _told = [];

    protected override TimeSpan Interval => options.SweepInterval;

    protected override string What => "sweep overdue machine steps";

    protected override async Task RunOnceAsync(CancellationToken cancellationToken)
    {
        var now = Time.GetUtcNow();
        await using var command = dataSource.CreateCommand($"""
            SELECT correlation_id, state->>'step', (state->>'attempts')::int
            FROM {sagas.Schema}.sagas
            WHERE saga_type = '{nameof(MachineSagaState)}' AND (state->>'deadline')::timestamptz < $1
            ORDER BY (state->>'deadline')::timestamptz
            LIMIT {Batch}
            """);
        command.Parameters.AddWithValue(now);
        var overdue = new List<MachineStepOverdue>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                overdue.Add(new MachineStepOverdue(reader.GetGuid(0), reader.GetString(1), reader.GetInt32(2)));
            }
        }

        foreach (var stale in _told.Where(t => now - t.Value > options.StepTimeout).Select(t => t.Key).ToList())
        {
            _told.Remove(stale);
        }

        foreach (var notice in overdue.Where(o => !_told.ContainsKey((o.MachineId, o.Step, o.Attempt))))
        {
            await bus.Publish(notice, cancellationToken);
            _told[(notice.MachineId, notice.Step, notice.Attempt)] = now;
            Logger.LogInformation("Machine {MachineId}: the {Step} step is overdue (attempt {Attempt})", notice.MachineId, notice.Step, notice.Attempt);
        }
    }
}
