using Npgsql;
using Platform.Contracts.Telemetry;
using Platform.EventSourcing;

namespace Platform.Telemetry.Health;

/// <summary>One check of a machine as its agent last reported it.</summary>
public sealed record CheckResult(string Name, bool Healthy, int ConsecutiveFailures, string? Detail, DateTimeOffset At);

/// <summary>A machine's health: its state (<see cref="HealthStates"/>) since when and why, and its checks.</summary>
public sealed record MachineHealth(Guid MachineId, string State, string? Reason, DateTimeOffset Since, IReadOnlyList<CheckResult> Checks);

/// <summary>
/// Each machine's health state and the last result of each of its checks, in telemetry's schema. The state row is
/// locked while a report is folded, so two checks reporting at once decide one after the other.
/// </summary>
public sealed class HealthStore(NpgsqlDataSource dataSource)
{
    public static SchemaMigration Migration { get; } = new("health", 1, """
        CREATE TABLE {schema}.machine_health (
            machine_id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL,
            state text NOT NULL,
            reason text,
            since timestamptz NOT NULL
        );
        CREATE TABLE {schema}.machine_health_checks (
            machine_id uuid NOT NULL,
            check_name text NOT NULL,
            healthy boolean NOT NULL,
            consecutive_failures int NOT NULL,
            detail text,
            at timestamptz NOT NULL,
            PRIMARY KEY (machine_id, check_name)
        );
        """);

    /// <summary>The machine's state row (made <c>unknown</c> if it had none), locked until the session ends.</summary>
    public async Task<(string State, DateTimeOffset Since)> LockAsync(EventStoreSession session, Guid machineId, Guid tenantId, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using var batch = Batch(session,
            ($"INSERT INTO {TelemetryService.Schema}.machine_health (machine_id, tenant_id, state, since) VALUES ($1, $2, '{HealthStates.Unknown}', $3) ON CONFLICT DO NOTHING",
                [machineId, tenantId, at]),
            ($"SELECT state, since FROM {TelemetryService.Schema}.machine_health WHERE machine_id = $1 FOR UPDATE", [machineId]));
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (reader.GetString(0), reader.GetFieldValue<DateTimeOffset>(1));
    }

    /// <summary>Records a check's result unless a later one is recorded already; returns every check of the machine.</summary>
    public async Task<IReadOnlyList<CheckResult>> RecordAsync(EventStoreSession session, Guid machineId, CheckResult result, CancellationToken cancellationToken)
    {
        await using (var command = new NpgsqlCommand($"""
            INSERT INTO {TelemetryService.Schema}.machine_health_checks (machine_id, check_name, healthy, consecutive_failures, detail, at)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (machine_id, check_name) DO UPDATE SET healthy = excluded.healthy, consecutive_failures = excluded.consecutive_failures,
                detail = excluded.detail, at = excluded.at
            WHERE machine_health_checks.at < excluded.at
            """, session.Connection, session.Transaction))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = machineId });
            command.Parameters.Add(new NpgsqlParameter { Value = result.Name });
            command.Parameters.Add(new NpgsqlParameter { Value = result.Healthy });
            command.Parameters.Add(new NpgsqlParameter { Value = result.ConsecutiveFailures });
            command.Parameters.Add(new NpgsqlParameter { Value = (object?)result.Detail ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
            command.Parameters.Add(new NpgsqlParameter { Value = result.At });
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        return await ChecksAsync(session.Connection, session.Transaction, machineId, cancellationToken);
    }

    public async Task SetStateAsync(EventStoreSession session, Guid machineId, string state, string reason, DateTimeOffset since, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"UPDATE {TelemetryService.Schema}.machine_health SET state = $2, reason = $3, since = $4 WHERE machine_id = $1",
            session.Connection, session.Transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = machineId });
        command.Parameters.Add(new NpgsqlParameter { Value = state });
        command.Parameters.Add(new NpgsqlParameter { Value = reason });
        command.Parameters.Add(new NpgsqlParameter { Value = since });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// The machine started or ended a run at <paramref name="at"/>: results from before it are forgotten, and with none
    /// left its state is <c>unknown</c> again (not an event: the run's own event says what happened).
    /// </summary>
    public async Task ResetAsync(EventStoreSession session, Guid machineId, Guid tenantId, DateTimeOffset at, CancellationToken cancellationToken)
    {
        await using var batch = Batch(session,
            ($"DELETE FROM {TelemetryService.Schema}.machine_health_checks WHERE machine_id = $1 AND at < $2", [machineId, at]),
            ($"""
                INSERT INTO {TelemetryService.Schema}.machine_health (machine_id, tenant_id, state, since) VALUES ($1, $2, '{HealthStates.Unknown}', $3)
                ON CONFLICT (machine_id) DO UPDATE SET state = excluded.state, reason = NULL, since = excluded.since
                WHERE NOT EXISTS (SELECT 1 FROM {TelemetryService.Schema}.machine_health_checks c WHERE c.machine_id = $1)
                """, [machineId, tenantId, at]));
        await batch.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>The machine's health, or null when no check of it was ever reported.</summary>
    public async Task<MachineHealth?> FindAsync(Guid machineId, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand($"SELECT state, reason, since FROM {TelemetryService.Schema}.machine_health WHERE machine_id = $1", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = machineId });
        string state;
        string? reason;
        DateTimeOffset since;
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            if (!await reader.ReadAsync(cancellationToken))
            {
                return null;
            }

            (state, reason, since) = (reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.GetFieldValue<DateTimeOffset>(2));
        }

        return new MachineHealth(machineId, state, reason, since, await ChecksAsync(connection, null, machineId, cancellationToken));
    }

    /// <summary>Statements, each with its own parameters, sent in one round trip within the session.</summary>
    private static NpgsqlBatch Batch(EventStoreSession session, params (string Sql, object[] Values)[] statements)
    {
        var batch = new NpgsqlBatch(session.Connection, session.Transaction);
        foreach (var (sql, values) in statements)
        {
            var command = new NpgsqlBatchCommand(sql);
            foreach (var value in values)
            {
                command.Parameters.Add(new NpgsqlParameter { Value = value });
            }

            batch.BatchCommands.Add(command);
        }

        return batch;
    }

    private static async Task<IReadOnlyList<CheckResult>> ChecksAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid machineId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"""
            SELECT check_name, healthy, consecutive_failures, detail, at FROM {TelemetryService.Schema}.machine_health_checks WHERE machine_id = $1 ORDER BY check_name
            """, connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = machineId });
        var checks = new List<CheckResult>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            checks.Add(new CheckResult(reader.GetString(0), reader.GetBoolean(1), reader.GetInt32(2), reader.IsDBNull(3) ? null : reader.GetString(3), reader.GetFieldValue<DateTimeOffset>(4)));
        }

        return checks;
    }
}
