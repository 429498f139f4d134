using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Platform.Contracts;
using Platform.Contracts.Provisioning;
using Platform.EventSourcing;
using Platform.EventSourcing.Subscriptions;

namespace Platform.Provisioning.Machines;

/// <summary>
/// Machines and their operations as tables, kept in the appending transaction: reads and listings come from
/// here, and the unique live name per tenant refuses a duplicate before its events commit. Each row holds
/// the machine folded by <see cref="Machine.Apply"/>, so the table and the stream cannot disagree.
/// </summary>
public sealed class MachineCatalog(string schema) : IProjection
{
    public const string LiveNameIndex = "machines_live_name";
    public const string IdempotencyKeyIndex = "idempotency_keys_pkey";

    public string Name => "machine-catalog";

    public static SchemaMigration Migration { get; } = new("machine-catalog", 1, """
        CREATE TABLE {schema}.machines (
            id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL,
            name text NOT NULL,
            state text NOT NULL,
            host_id uuid NOT NULL,
            labels jsonb NOT NULL,
            version bigint NOT NULL,
            machine jsonb NOT NULL
        );
        CREATE UNIQUE INDEX machines_live_name ON {schema}.machines (tenant_id, name) WHERE state <> 'destroyed';
        CREATE INDEX ON {schema}.machines (tenant_id, id);
        CREATE INDEX ON {schema}.machines USING gin (labels jsonb_path_ops);
        CREATE TABLE {schema}.operations (
            id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL,
            machine_id uuid NOT NULL,
            type text NOT NULL,
            status text NOT NULL,
            error text,
            created_at timestamptz NOT NULL,
            completed_at timestamptz
        );
        CREATE TABLE {schema}.idempotency_keys (
            tenant_id uuid NOT NULL,
            key text NOT NULL,
            request_hash text NOT NULL,
            machine_id uuid NOT NULL,
            operation_id uuid NOT NULL,
            created_at timestamptz NOT NULL,
            CONSTRAINT idempotency_keys_pkey PRIMARY KEY (tenant_id, key)
        );
        """);

    /// <summary>Each operation's steps as the machine saga completes them.</summary>
    public static SchemaMigration StepsMigration { get; } = new("machine-catalog", 2, """
        ALTER TABLE {schema}.operations ADD COLUMN steps jsonb NOT NULL DEFAULT '[]';
        """);

    public async Task ApplyAsync(IReadOnlyList<StoredEvent> events, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        foreach (var stored in events)
        {
            if (stored.Data is IdempotencyKeyRecorded keyed)
            {
                await transaction.ExecuteAsync($"INSERT INTO {schema}.idempotency_keys (tenant_id, key, request_hash, machine_id, operation_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)", cancellationToken,
                    keyed.TenantId, keyed.Key, keyed.RequestHash, keyed.MachineId, keyed.OperationId, stored.RecordedAt);
            }

            if (!stored.StreamId.StartsWith("machine-", StringComparison.Ordinal))
            {
                continue;
            }

            if (stored.Data is IdempotencyKeyRecorded || !IsMachineEvent(stored.Data))
            {
                // Its state is as it was, but its stream moved on: the version (the ETag that If-Match is checked against) follows.
                await transaction.ExecuteAsync($"UPDATE {schema}.machines SET version = $2 WHERE id = $1 AND version < $2", cancellationToken,
                    Guid.Parse(stored.StreamId["machine-".Length..]), stored.StreamVersion);
                continue;
            }

            if (stored.Data is MachineStepCompleted step)
            {
                await transaction.ExecuteAsync($"UPDATE {schema}.operations SET steps = steps || jsonb_build_array(jsonb_build_object('step', $2::text, 'detail', $3::text, 'completedAt', $4::timestamptz)) WHERE id = $1",
                    cancellationToken, step.OperationId, step.Step, step.Detail, step.CompletedAt);
            }

            var before = stored.Data is MachineRequested ? null : await LoadAsync(transaction, stored.StreamId, cancellationToken);
            var after = Machine.Evolve(before, stored.Data);
            await SaveAsync(transaction, after, stored.StreamVersion, cancellationToken);
            await RecordOperationsAsync(transaction, before, after, stored.RecordedAt, cancellationToken);
        }
    }

    public async Task ResetAsync(NpgsqlTransaction transaction, CancellationToken cancellationToken) =>
        await transaction.ExecuteAsync($"TRUNCATE {schema}.machines, {schema}.operations, {schema}.idempotency_keys", cancellationToken);

    /// <summary>
    /// Every event of a machine's stream changes what the catalog shows, but the records of what ran and changed inside it:
    /// those are its history (<c>/events</c>), and an exec must not cost a catalog write.
    /// </summary>
    private static bool IsMachineEvent(object data) => data is not (MachineCommandRan or MachineFileWritten or MachineFileDeleted);

    private async Task<Machine?> LoadAsync(NpgsqlTransaction transaction, string streamId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"SELECT machine FROM {schema}.machines WHERE id = $1 FOR UPDATE", transaction.Connection, transaction);
        command.Parameters.AddWithValue(Guid.Parse(streamId["machine-".Length..]));
        var json = await command.ExecuteScalarAsync(cancellationToken) as string;
        return json is null ? null : JsonSerializer.Deserialize<Machine>(json, PlatformJson.Options);
    }

    private async Task SaveAsync(NpgsqlTransaction transaction, Machine machine, long version, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"""
            INSERT INTO {schema}.machines (id, tenant_id, name, state, host_id, labels, version, machine) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (id) DO UPDATE SET state = excluded.state, version = excluded.version, machine = excluded.machine
            """, transaction.Connection, transaction);
        command.Parameters.AddWithValue(machine.Id);
        command.Parameters.AddWithValue(machine.TenantId);
        command.Parameters.AddWithValue(machine.Name);
        command.Parameters.AddWithValue(machine.State);
        command.Parameters.AddWithValue(machine.HostId);
        command.Parameters.AddWithValue(NpgsqlDbType.Jsonb, JsonSerializer.Serialize(machine.Labels, PlatformJson.Options));
        command.Parameters.AddWithValue(version);
        command.Parameters.AddWithValue(NpgsqlDbType.Jsonb, JsonSerializer.Serialize(machine, PlatformJson.Options));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>A new pending operation is inserted; the one it replaces ends, succeeded when the machine reached its goal.</summary>
    private async Task RecordOperationsAsync(NpgsqlTransaction transaction, Machine? before, Machine after, DateTimeOffset at, CancellationToken cancellationToken)
    {
        if (before?.Pending is { } ended && ended.Id != after.Pending?.Id)
        {
            var succeeded = after.State == ended.Goal;
            // A pause its host could not make leaves the machine running, with why.
            var error = succeeded ? null
                : after.State == MachineStates.Failed || ended.Type == "pause" && after.LastError is not null ? after.LastError
                : $"Superseded: the machine is {after.State}.";
            await transaction.ExecuteAsync($"UPDATE {schema}.operations SET status = $2, error = $3, completed_at = $4 WHERE id = $1", cancellationToken,
                ended.Id, succeeded ? "succeeded" : "failed", error, at);
        }

        if (after.Pending is { } started && started.Id != before?.Pending?.Id)
        {
            await transaction.ExecuteAsync($"INSERT INTO {schema}.operations (id, tenant_id, machine_id, type, status, created_at) VALUES ($1, $2, $3, $4, 'pending', $5)", cancellationToken,
                started.Id, after.TenantId, after.Id, started.Type, started.RequestedAt);
        }
    }
}

/// <summary>
/// Provisioning's own event, beside a machine's first: the request came with an Idempotency-Key, so a repeat
/// of it answers with this machine instead of creating another. <paramref name="RequestHash"/> tells a repeat
/// from a different request reusing the key.
/// </summary>
public sealed record IdempotencyKeyRecorded(Guid TenantId, string Key, string RequestHash, Guid MachineId, Guid OperationId);
