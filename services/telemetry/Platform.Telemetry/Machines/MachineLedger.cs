using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Platform.Contracts;
using Platform.Contracts.Provisioning;
using Platform.EventSourcing;

namespace Platform.Telemetry.Machines;

/// <summary>What telemetry knows of a machine from provisioning's events: whose it is, its shape and probe, and its state since when.</summary>
public sealed record LedgerMachine(
    Guid MachineId, Guid TenantId, string Name, string Kind, string Driver, MachineShape Shape, MachineProbe? Probe, string State, DateTimeOffset StateSince);

/// <summary>One machine's time running within a period, for its cost.</summary>
public sealed record MachineRunTime(LedgerMachine Machine, TimeSpan Running);

/// <summary>
/// Telemetry's own record of the machines (it reads no other service's tables): one row per machine, and one per
/// run (from <c>MachineRunning</c> to the stop, failure or destruction that ended it), which is what costs accrue over.
/// </summary>
public sealed class MachineLedger(NpgsqlDataSource dataSource)
{
    public static SchemaMigration Migration { get; } = new("machine-ledger", 1, """
        CREATE TABLE {schema}.machines (
            machine_id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL,
            name text NOT NULL,
            kind text NOT NULL,
            driver text NOT NULL,
            vcpus int NOT NULL,
            memory_mib int NOT NULL,
            disk_mib int NOT NULL,
            probe jsonb,
            state text NOT NULL,
            state_since timestamptz NOT NULL,
            requested_at timestamptz NOT NULL
        );
        CREATE INDEX ON {schema}.machines (tenant_id, machine_id);
        CREATE TABLE {schema}.machine_runs (
            machine_id uuid NOT NULL,
            tenant_id uuid NOT NULL,
            started_at timestamptz NOT NULL,
            ended_at timestamptz,
            PRIMARY KEY (machine_id, started_at)
        );
        CREATE INDEX ON {schema}.machine_runs (tenant_id, started_at);
        """);

    private const string Columns = "machine_id, tenant_id, name, kind, driver, vcpus, memory_mib, disk_mib, probe::text, state, state_since";

    public async Task RequestedAsync(EventStoreSession session, MachineRequested requested, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"""
            INSERT INTO {TelemetryService.Schema}.machines (machine_id, tenant_id, name, kind, driver, vcpus, memory_mib, disk_mib, probe, state, state_since, requested_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, 'creating', $10, $10)
            ON CONFLICT (machine_id) DO NOTHING
            """, session.Connection, session.Transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = requested.MachineId });
        command.Parameters.Add(new NpgsqlParameter { Value = requested.TenantId });
        command.Parameters.Add(new NpgsqlParameter { Value = requested.Name });
        command.Parameters.Add(new NpgsqlParameter { Value = requested.Kind });
        command.Parameters.Add(new NpgsqlParameter { Value = requested.Driver });
        command.Parameters.Add(new NpgsqlParameter { Value = requested.Shape.Vcpus });
        command.Parameters.Add(new NpgsqlParameter { Value = requested.Shape.MemoryMiB });
        command.Parameters.Add(new NpgsqlParameter { Value = requested.Shape.DiskMiB });
        command.Parameters.Add(new NpgsqlParameter
        {
            Value = requested.Probe is null ? DBNull.Value : JsonSerializer.Serialize(requested.Probe, PlatformJson.Options),
            NpgsqlDbType = NpgsqlDbType.Text,
        });
        command.Parameters.Add(new NpgsqlParameter { Value = requested.RequestedAt });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>The machine runs from <paramref name="at"/>: a run opens (a repeat of the same event changes nothing).</summary>
    public Task RunningAsync(EventStoreSession session, Guid machineId, Guid tenantId, DateTimeOffset at, CancellationToken cancellationToken) =>
        ExecuteAsync(session, $"""
            WITH closed AS (
                UPDATE {TelemetryService.Schema}.machine_runs SET ended_at = $3 WHERE machine_id = $1 AND ended_at IS NULL AND started_at < $3
            ), state AS (
                UPDATE {TelemetryService.Schema}.machines SET state = 'running', state_since = $3 WHERE machine_id = $1 AND state_since <= $3
            )
            INSERT INTO {TelemetryService.Schema}.machine_runs (machine_id, tenant_id, started_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING
            """, cancellationToken, machineId, tenantId, at);

    /// <summary>The machine stopped, failed or was destroyed at <paramref name="at"/>: its open run ends there.</summary>
    public Task EndedAsync(EventStoreSession session, Guid machineId, string state, DateTimeOffset at, CancellationToken cancellationToken) =>
        ExecuteAsync(session, $"""
            WITH closed AS (
                UPDATE {TelemetryService.Schema}.machine_runs SET ended_at = $3 WHERE machine_id = $1 AND ended_at IS NULL AND started_at <= $3
            )
            UPDATE {TelemetryService.Schema}.machines SET state = $2, state_since = $3 WHERE machine_id = $1 AND state_since <= $3
            """, cancellationToken, machineId, state, at);

    public async Task<LedgerMachine?> FindAsync(Guid machineId, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await FindAsync(connection, null, machineId, cancellationToken);
    }

    public async Task<LedgerMachine?> FindAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, Guid machineId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"SELECT {Columns} FROM {TelemetryService.Schema}.machines WHERE machine_id = $1", connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = machineId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? Read(reader) : null;
    }

    /// <summary>Every machine of the tenant that existed within [<paramref name="from"/>, <paramref name="to"/>), with how long it ran in it.</summary>
    public async Task<IReadOnlyList<MachineRunTime>> RunTimesAsync(Guid tenantId, DateTimeOffset from, DateTimeOffset to, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            SELECT {string.Join(", ", Columns.Split(", ").Select(c => "m." + c))},
                coalesce(sum(extract(epoch FROM least(coalesce(r.ended_at, $4), $3) - greatest(r.started_at, $2))), 0)::float8
            FROM {TelemetryService.Schema}.machines m
            LEFT JOIN {TelemetryService.Schema}.machine_runs r
                ON r.machine_id = m.machine_id AND r.started_at < $3 AND coalesce(r.ended_at, $4) > $2
            WHERE m.tenant_id = $1 AND m.requested_at < $3 AND NOT (m.state = 'destroyed' AND m.state_since < $2)
            GROUP BY m.machine_id
            ORDER BY m.machine_id
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = tenantId });
        command.Parameters.Add(new NpgsqlParameter { Value = from });
        command.Parameters.Add(new NpgsqlParameter { Value = to });
        command.Parameters.Add(new NpgsqlParameter { Value = now });
        var machines = new List<MachineRunTime>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            machines.Add(new MachineRunTime(Read(reader), TimeSpan.FromSeconds(Math.Max(0, reader.GetDouble(11)))));
        }

        return machines;
    }

    private static LedgerMachine Read(NpgsqlDataReader reader) => new(
        reader.GetGuid(0), reader.GetGuid(1), reader.GetString(2), reader.GetString(3), reader.GetString(4),
        new MachineShape(reader.GetInt32(5), reader.GetInt32(6), reader.GetInt32(7)),
        reader.IsDBNull(8) ? null : JsonSerializer.Deserialize<MachineProbe>(reader.GetString(8), PlatformJson.Options),
        reader.GetString(9), reader.GetFieldValue<DateTimeOffset>(10));

    private static async Task ExecuteAsync(EventStoreSession session, string sql, CancellationToken cancellationToken, params object[] values)
    {
        await using var command = new NpgsqlCommand(sql, session.Connection, session.Transaction);
        foreach (var value in values)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }

        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
