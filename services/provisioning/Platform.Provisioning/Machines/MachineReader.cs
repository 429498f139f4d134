using System.Text.Json;
using System.Text.Json.Serialization;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Provisioning;
using Platform.EventSourcing;
using Platform.Hosting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;

namespace Platform.Provisioning.Machines;

/// <summary>A machine as the API shows it; <see cref="Version"/> is its stream version, also its ETag.</summary>
public sealed record MachineView(
    Guid Id,
    string Name,
    string Kind,
    string Driver,
    string State,
    TemplateRef Template,
    int Vcpus,
    int MemoryMiB,
    int DiskMiB,
    IReadOnlyDictionary<string, string> Labels,
    Guid HostId,
    string? Accelerator,
    string? BootedFrom,
    MachineNetworkView? Network,
    Guid? ExitNodeId,
    IReadOnlyList<string>? Command,
    string? LastError,
    int? ExitCode,
    PendingOperationView? PendingOperation,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    long Version,
    string? Region = null,
    string? InstanceType = null,
    MachineLifecycleView? Lifecycle = null,
    Guid? FromSnapshot = null)
{
    public static MachineView Of(Machine m, long version) => new(
        m.Id, m.Name, m.Kind, m.Driver, m.State, m.Template, m.Shape.Vcpus, m.Shape.MemoryMiB, m.Shape.DiskMiB, m.Labels, m.HostId, m.Accelerator,
        m.BootedFrom, m.Network is { } n ? new MachineNetworkView(n.Address, n.PrefixLength, n.Gateway, n.Mac, n.PublicAddress) : null, m.ExitNodeId, m.Command, m.LastError,
        m.ExitCode, m.Pending is { } p ? new PendingOperationView(p.Id, p.Type) : null, m.CreatedAt, m.UpdatedAt, version, m.Region, m.InstanceType,
        m.Lifecycle is { } l ? new MachineLifecycleView(l.TtlSeconds, m.ExpiresAt, l.Idle, m.Expiring is { } e ? new ExpiringView(e.Reason, e.Action, e.ActsAt) : null) : null,
        m.FromSnapshot);

    [JsonIgnore]
    public string ETag => $"\"{Version}\"";
}

/// <summary>When the machine ends by itself: its time-to-live and when it ends, its idle policy, and the warning given, if any.</summary>
public sealed record MachineLifecycleView(int? TtlSeconds, DateTimeOffset? ExpiresAt, IdlePolicy? Idle, ExpiringView? Expiring);

public sealed record ExpiringView(string Reason, string Action, DateTimeOffset ActsAt);

public sealed record MachineNetworkView(string Ip, int PrefixLength, string Gateway, string Mac, string? PublicIp = null);

public sealed record PendingOperationView(Guid Id, string Type);

/// <summary>
/// An operation on a machine. While a creation or destruction runs, <paramref name="Step"/> is the step it waits for and
/// <paramref name="Attempts"/> how often that step's command was issued; <paramref name="Steps"/> are those done.
/// </summary>
public sealed record OperationView(
    Guid Id,
    Guid MachineId,
    string Type,
    string Status,
    string? Error,
    DateTimeOffset CreatedAt,
    DateTimeOffset? CompletedAt,
    string? Step,
    int? Attempts,
    DateTimeOffset? StepDeadline,
    IReadOnlyList<OperationStepView> Steps)
{
    /// <summary>A fork's snapshot, which its machines are made from.</summary>
    public Guid? SnapshotId { get; init; }

    /// <summary>A fork's machines, in order, each with how its creation went.</summary>
    public IReadOnlyList<Snapshots.ForkResultView>? Forks { get; init; }
}

public sealed record OperationStepView(string Step, string Detail, DateTimeOffset CompletedAt);

/// <summary>Reads machines and operations from the catalog, only those the caller may see.</summary>
public sealed class MachineReader(NpgsqlDataSource dataSource, EventStore store)
{
    private string Schema => store.Schema;

    public async Task<MachineView> GetAsync(Guid machineId, Caller caller, CancellationToken cancellationToken) =>
        await FindAsync(machineId, caller, cancellationToken) ?? throw Problems.NotFound("machine");

    public async Task<MachineView?> FindAsync(Guid machineId, Caller caller, CancellationToken cancellationToken) =>
        await FindStateAsync(machineId, caller, cancellationToken) is { } found ? MachineView.Of(found.Machine, found.Version) : null;

    /// <summary>The machine as the catalog holds it, with its stream version, when the caller may see it.</summary>
    public async Task<(Machine Machine, long Version)?> FindStateAsync(Guid machineId, Caller caller, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT machine, version FROM {Schema}.machines WHERE id = $1 AND ($2 OR tenant_id = $3)");
        command.Parameters.AddWithValue(machineId);
        command.Parameters.AddWithValue(caller.SeesAllTenants);
        command.Parameters.AddWithValue(caller.TenantId ?? Guid.Empty);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken)
            ? (JsonSerializer.Deserialize<Machine>(reader.GetString(0), PlatformJson.Options)!, reader.GetInt64(1))
            : null;
    }

    public async Task<Page<MachineView>> ListAsync(Caller caller, string? state, IReadOnlyDictionary<string, string> labels, int limit, Guid after, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            SELECT machine, version FROM {Schema}.machines
            WHERE ($1 OR tenant_id = $2) AND id > $3 AND ($4::text IS NULL OR state = $4) AND labels @> $5::jsonb
              AND ($4::text = 'destroyed' OR state <> 'destroyed')
            ORDER BY id LIMIT $6
            """);
        command.Parameters.AddWithValue(caller.SeesAllTenants);
        command.Parameters.AddWithValue(caller.TenantId ?? Guid.Empty);
        command.Parameters.AddWithValue(after);
        command.Parameters.AddWithValue((object?)state ?? DBNull.Value);
        command.Parameters.AddWithValue(JsonSerializer.Serialize(labels, PlatformJson.Options));
        command.Parameters.AddWithValue(limit + 1);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rows = new List<MachineView>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(Read(reader));
        }

        return Paging.Of(rows, limit, m => m.Id);
    }

    /// <summary>An operation, with the saga's current step, attempts and deadline while it is pending (never once it has ended); null when the caller sees none.</summary>
    public async Task<OperationView?> FindOperationAsync(Guid operationId, Caller caller, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            SELECT o.id, o.machine_id, o.type, o.status, o.error, o.created_at, o.completed_at, o.steps,
                   s.state->>'step', (s.state->>'attempts')::int, (s.state->>'deadline')::timestamptz
            FROM {Schema}.operations o
            LEFT JOIN {Schema}.sagas s ON o.status = 'pending' AND s.saga_type = 'MachineSagaState' AND s.correlation_id = o.machine_id
                AND (s.state->>'operationId')::uuid = o.id AND s.state->>'step' <> ''
            WHERE o.id = $1 AND ($2 OR o.tenant_id = $3)
            """);
        command.Parameters.AddWithValue(operationId);
        command.Parameters.AddWithValue(caller.SeesAllTenants);
        command.Parameters.AddWithValue(caller.TenantId ?? Guid.Empty);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return new OperationView(reader.GetGuid(0), reader.GetGuid(1), reader.GetString(2), reader.GetString(3), reader.IsDBNull(4) ? null : reader.GetString(4),
            reader.GetFieldValue<DateTimeOffset>(5), reader.IsDBNull(6) ? null : reader.GetFieldValue<DateTimeOffset>(6),
            reader.IsDBNull(8) ? null : reader.GetString(8), reader.IsDBNull(9) ? null : reader.GetInt32(9), reader.IsDBNull(10) ? null : reader.GetFieldValue<DateTimeOffset>(10),
            JsonSerializer.Deserialize<List<OperationStepView>>(reader.GetString(7), PlatformJson.Options)!);
    }

    /// <summary>The machine an earlier request with this key created; a different request reusing the key is refused.</summary>
    public async Task<MachineAccepted?> FindByIdempotencyKeyAsync(Guid tenantId, string key, string requestHash, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT request_hash, machine_id, operation_id FROM {Schema}.idempotency_keys WHERE tenant_id = $1 AND key = $2");
        command.Parameters.AddWithValue(tenantId);
        command.Parameters.AddWithValue(key);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return reader.GetString(0) == requestHash
            ? new MachineAccepted(reader.GetGuid(1), reader.GetGuid(2))
            : throw Problems.Invalid("Idempotency-Key", "was used already for a different request");
    }

    /// <summary>Whether an operation with this id was recorded on any machine, pending or ended.</summary>
    public async Task<bool> OperationExistsAsync(Guid operationId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT EXISTS (SELECT 1 FROM {Schema}.operations WHERE id = $1)");
        command.Parameters.AddWithValue(operationId);
        return (bool)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    private static MachineView Read(NpgsqlDataReader reader) =>
        MachineView.Of(JsonSerializer.Deserialize<Machine>(reader.GetString(0), PlatformJson.Options)!, reader.GetInt64(1));
}
