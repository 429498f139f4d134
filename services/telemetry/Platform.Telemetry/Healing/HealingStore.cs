using Npgsql;
using Platform.Contracts.Telemetry;
using Platform.EventSourcing;
using Platform.Hosting;

namespace Platform.Telemetry.Healing;

/// <summary>
/// What the watchdog knows of one machine: whether it may heal it, how often it did lately, when it acts next and how
/// (<see cref="Action"/>, a <see cref="HealingActions"/> value), and the exit node its traffic leaves through.
/// </summary>
public sealed record HealingState(
    Guid MachineId, Guid TenantId, bool OptedOut, int Attempts, DateTimeOffset? DueAt, string? LastReason, DateTimeOffset? LastFailedAt, bool Abandoned,
    string Action = HealingActions.Start, Guid? ExitNodeId = null);

/// <summary>What the watchdog does to heal a machine.</summary>
public static class HealingActions
{
    /// <summary>It failed: start it again.</summary>
    public const string Start = "start";

    /// <summary>It runs but is unhealthy: restart it.</summary>
    public const string Restart = "restart";

    /// <summary>Its tunnel is down: make the tunnel again with a fresh key.</summary>
    public const string ReattachTunnel = "reattach-tunnel";

    /// <summary>Its exit node's public address changed: run it afresh from its template.</summary>
    public const string Recreate = "recreate";

    public static IReadOnlyList<string> All { get; } = [Start, Restart, ReattachTunnel, Recreate];
}

/// <summary>The watchdog's tables: one row per machine it watches, and each tenant's policy (folded from <c>healing-policy-{tenantId}</c>).</summary>
public sealed class HealingStore(NpgsqlDataSource dataSource, EventStore store, IConfiguration configuration)
{
    /// <summary>The policy of a tenant that set none: <c>Platform:Telemetry:Healing:*</c>, each setting defaulting on its own.</summary>
    public HealingPolicy Defaults { get; } = ConfigurationRecords.Read(configuration.GetSection("Platform:Telemetry:Healing"), HealingPolicy.Default);

    public static SchemaMigration Migration { get; } = new("healing", 1, """
        CREATE TABLE {schema}.healing_machines (
            machine_id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL,
            opted_out boolean NOT NULL DEFAULT false,
            attempts int NOT NULL DEFAULT 0,
            due_at timestamptz,
            last_reason text,
            last_failed_at timestamptz,
            abandoned boolean NOT NULL DEFAULT false
        );
        CREATE INDEX ON {schema}.healing_machines (due_at) WHERE due_at IS NOT NULL;
        CREATE INDEX ON {schema}.healing_machines (tenant_id, machine_id);
        """);

    /// <summary>An unhealthy machine is restarted, a failed one started: the row says which is due.</summary>
    public static SchemaMigration ActionMigration { get; } = new("healing", 2, "ALTER TABLE {schema}.healing_machines ADD COLUMN action text NOT NULL DEFAULT 'start';");

    /// <summary>The exit node a machine's traffic leaves through, so that a change of the node's address finds its machines.</summary>
    public static SchemaMigration ExitNodeMigration { get; } = new("healing", 3, """
        ALTER TABLE {schema}.healing_machines ADD COLUMN exit_node_id uuid;
        CREATE INDEX ON {schema}.healing_machines (exit_node_id) WHERE exit_node_id IS NOT NULL;
        """);

    public static string PolicyStreamOf(Guid tenantId) => $"healing-policy-{tenantId}";

    public async Task<HealingPolicy> PolicyAsync(Guid tenantId, CancellationToken cancellationToken)
    {
        var loaded = await store.LoadAsync<HealingPolicySet>(PolicyStreamOf(tenantId), (_, e) => (HealingPolicySet)e, cancellationToken);
        return loaded.State?.Policy ?? Defaults;
    }

    /// <summary>The machine's row, locked until the transaction ends.</summary>
    public async Task<HealingState?> FindAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid machineId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"""
            SELECT {Columns} FROM {store.Schema}.healing_machines WHERE machine_id = $1 FOR UPDATE
            """, connection, transaction);
        command.Parameters.AddWithValue(machineId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? Read(reader) : null;
    }

    public async Task<IReadOnlyList<HealingState>> ListAsync(Guid? tenantId, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand($"""
            SELECT {Columns} FROM {store.Schema}.healing_machines WHERE $1::uuid IS NULL OR tenant_id = $1 ORDER BY machine_id LIMIT 500
            """, connection);
        command.Parameters.AddWithValue((object?)tenantId ?? DBNull.Value);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var states = new List<HealingState>();
        while (await reader.ReadAsync(cancellationToken))
        {
            states.Add(Read(reader));
        }

        return states;
    }

    public async Task SaveAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, HealingState state, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"""
            INSERT INTO {store.Schema}.healing_machines ({Columns})
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (machine_id) DO UPDATE SET opted_out = excluded.opted_out, attempts = excluded.attempts, due_at = excluded.due_at,
                last_reason = excluded.last_reason, last_failed_at = excluded.last_failed_at, abandoned = excluded.abandoned, action = excluded.action,
                exit_node_id = COALESCE(excluded.exit_node_id, healing_machines.exit_node_id)
            """, connection, transaction);
        command.Parameters.AddWithValue(state.MachineId);
        command.Parameters.AddWithValue(state.TenantId);
        command.Parameters.AddWithValue(state.OptedOut);
        command.Parameters.AddWithValue(state.Attempts);
        command.Parameters.AddWithValue((object?)state.DueAt ?? DBNull.Value);
        command.Parameters.AddWithValue((object?)state.LastReason ?? DBNull.Value);
        command.Parameters.AddWithValue((object?)state.LastFailedAt ?? DBNull.Value);
        command.Parameters.AddWithValue(state.Abandoned);
        command.Parameters.AddWithValue(state.Action);
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)state.ExitNodeId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Uuid });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>The machines whose traffic leaves through the exit node.</summary>
    public async Task<IReadOnlyList<Guid>> MachinesBehindAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid exitNodeId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"SELECT machine_id FROM {store.Schema}.healing_machines WHERE exit_node_id = $1 ORDER BY machine_id", connection, transaction);
        command.Parameters.AddWithValue(exitNodeId);
        var machines = new List<Guid>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            machines.Add(reader.GetGuid(0));
        }

        return machines;
    }

    public async Task ForgetAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid machineId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"DELETE FROM {store.Schema}.healing_machines WHERE machine_id = $1", connection, transaction);
        command.Parameters.AddWithValue(machineId);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }


    private static HealingState Read(NpgsqlDataReader reader) => new(
        reader.GetGuid(0), reader.GetGuid(1), reader.GetBoolean(2), reader.GetInt32(3),
        reader.IsDBNull(4) ? null : reader.GetFieldValue<DateTimeOffset>(4), reader.IsDBNull(5) ? null : reader.GetString(5),
        reader.IsDBNull(6) ? null : reader.GetFieldValue<DateTimeOffset>(6), reader.GetBoolean(7), reader.GetString(8), reader.IsDBNull(9) ? null : reader.GetGuid(9));

    private const string Columns = "machine_id, tenant_id, opted_out, attempts, due_at, last_reason, last_failed_at, abandoned, action, exit_node_id";
}
