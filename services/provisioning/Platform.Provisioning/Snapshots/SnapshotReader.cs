using System.Text.Json;
using Npgsql;
using Platform.Contracts;
using Platform.EventSourcing;
using Platform.Hosting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;
using Platform.Provisioning.Machines;

namespace Platform.Provisioning.Snapshots;

/// <summary>A snapshot as the API shows it; <see cref="Version"/> is its stream version.</summary>
public sealed record SnapshotView(
    Guid Id,
    string Name,
    string State,
    Guid MachineId,
    string MachineName,
    Guid HostId,
    string Kind,
    string Driver,
    Platform.Contracts.Provisioning.TemplateRef Template,
    int Vcpus,
    int MemoryMiB,
    string? Contents,
    long? SizeBytes,
    string? Error,
    Guid? ForkOperationId,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    long Version)
{
    public static SnapshotView Of(Snapshot s, long version) => new(
        s.Id, s.Name, s.State, s.MachineId, s.MachineName, s.HostId, s.Kind, s.Driver, s.Template, s.Shape.Vcpus, s.Shape.MemoryMiB, s.Contents, s.SizeBytes,
        s.Error, s.Fork?.OperationId, s.CreatedAt, s.UpdatedAt, version);
}

/// <summary>The answer to a fork: its operation, the snapshot it starts from, and the machines it makes, in order.</summary>
public sealed record ForkAccepted(Guid OperationId, Guid SnapshotId, IReadOnlyList<Guid> MachineIds);

/// <summary>One machine of a fork: its state, and why it failed when it did (never made, or its creation failed and was undone).</summary>
public sealed record ForkResultView(Guid MachineId, string Status, string? MachineState, string? Error);

/// <summary>Reads snapshots and fork operations from the catalog, only those the caller may see.</summary>
public sealed class SnapshotReader(NpgsqlDataSource dataSource, EventStore store)
{
    private string Schema => store.Schema;

    public async Task<(Snapshot Snapshot, long Version)> GetAsync(Guid snapshotId, Caller caller, CancellationToken cancellationToken) =>
        await FindAsync(snapshotId, caller, cancellationToken) ?? throw Problems.NotFound("snapshot");

    public async Task<(Snapshot Snapshot, long Version)?> FindAsync(Guid snapshotId, Caller caller, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT snapshot, version FROM {Schema}.snapshots WHERE id = $1 AND ($2 OR tenant_id = $3)");
        command.Parameters.AddWithValue(snapshotId);
        command.Parameters.AddWithValue(caller.SeesAllTenants);
        command.Parameters.AddWithValue(caller.TenantId ?? Guid.Empty);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? (Read(reader), reader.GetInt64(1)) : null;
    }

    /// <summary>The caller's snapshots (deleted ones only when asked for by state), oldest first, optionally of one machine.</summary>
    public async Task<Page<SnapshotView>> ListAsync(Caller caller, Guid? machineId, string? state, int limit, Guid after, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            SELECT snapshot, version FROM {Schema}.snapshots
            WHERE ($1 OR tenant_id = $2) AND id > $3 AND ($4::uuid IS NULL OR machine_id = $4) AND ($5::text IS NULL OR state = $5)
              AND ($5::text = 'deleted' OR state <> 'deleted')
            ORDER BY id LIMIT $6
            """);
        command.Parameters.AddWithValue(caller.SeesAllTenants);
        command.Parameters.AddWithValue(caller.TenantId ?? Guid.Empty);
        command.Parameters.AddWithValue(after);
        command.Parameters.AddWithValue((object?)machineId ?? DBNull.Value);
        command.Parameters.AddWithValue((object?)state ?? DBNull.Value);
        command.Parameters.AddWithValue(limit + 1);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rows = new List<SnapshotView>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(SnapshotView.Of(Read(reader), reader.GetInt64(1)));
        }

        return Paging.Of(rows, limit, s => s.Id);
    }

    /// <summary>The names of the machines not destroyed that were made from the snapshot (they start from it at every launch).</summary>
    public async Task<IReadOnlyList<string>> MachinesMadeFromAsync(Guid snapshotId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT name FROM {Schema}.machines WHERE machine->>'fromSnapshot' = $1 AND state <> 'destroyed' ORDER BY name");
        command.Parameters.AddWithValue(snapshotId.ToString());
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var names = new List<string>();
        while (await reader.ReadAsync(cancellationToken))
        {
            names.Add(reader.GetString(0));
        }

        return names;
    }

    /// <summary>
    /// A fork as an operation: pending while its snapshot is made or any of its machines is still being created; then
    /// succeeded when every machine was, failed otherwise (with each machine's result). Null when it is no fork the caller sees.
    /// </summary>
    public async Task<OperationView?> FindForkOperationAsync(Guid operationId, Caller caller, CancellationToken cancellationToken)
    {
        Snapshot snapshot;
        await using (var command = dataSource.CreateCommand($"SELECT snapshot FROM {Schema}.snapshots WHERE fork_operation_id = $1 AND ($2 OR tenant_id = $3)"))
        {
            command.Parameters.AddWithValue(operationId);
            command.Parameters.AddWithValue(caller.SeesAllTenants);
            command.Parameters.AddWithValue(caller.TenantId ?? Guid.Empty);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken))
            {
                return null;
            }

            snapshot = Read(reader);
        }

        var fork = snapshot.Fork!;
        var creations = new Dictionary<Guid, (string Status, string? Error, DateTimeOffset? CompletedAt, string State)>();
        await using (var command = dataSource.CreateCommand($"""
            SELECT o.machine_id, o.status, o.error, o.completed_at, m.state FROM {Schema}.operations o JOIN {Schema}.machines m ON m.id = o.machine_id
            WHERE o.machine_id = ANY($1) AND o.type = 'create'
            """))
        {
            command.Parameters.AddWithValue(fork.MachineIds.ToArray());
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                creations[reader.GetGuid(0)] = (reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2),
                    reader.IsDBNull(3) ? null : reader.GetFieldValue<DateTimeOffset>(3), reader.GetString(4));
            }
        }

        var results = fork.MachineIds.Select(id => snapshot switch
        {
            { State: SnapshotStates.Failed } => new ForkResultView(id, "failed", null, $"the snapshot to fork from failed: {snapshot.Error}"),
            _ when snapshot.RefusedForks.TryGetValue(id, out var refused) => new ForkResultView(id, "failed", null, refused),
            _ when creations.TryGetValue(id, out var created) => new ForkResultView(id, created.Status, created.State, created.Error),
            _ => new ForkResultView(id, "pending", null, null),
        }).ToList();
        var pending = results.Any(r => r.Status == "pending");
        var failed = results.Count(r => r.Status == "failed");
        var status = pending ? "pending" : failed > 0 ? "failed" : "succeeded";
        var error = pending || failed == 0 ? null
            : snapshot.State == SnapshotStates.Failed ? $"The snapshot to fork from failed: {snapshot.Error}"
            : $"{failed} of {results.Count} forks failed; the others run.";
        DateTimeOffset? completedAt = pending ? null
            : snapshot.State == SnapshotStates.Failed ? snapshot.UpdatedAt
            : creations.Values.Select(c => c.CompletedAt).Append(snapshot.UpdatedAt).Max();
        var step = !pending ? null : snapshot.State == SnapshotStates.Creating ? "snapshot" : "machines";
        return new OperationView(operationId, snapshot.MachineId, "fork", status, error, snapshot.CreatedAt, completedAt, step, null, null, [])
        {
            SnapshotId = snapshot.Id,
            Forks = results,
        };
    }

    private static Snapshot Read(NpgsqlDataReader reader) => JsonSerializer.Deserialize<Snapshot>(reader.GetString(0), PlatformJson.Options)!;
}
