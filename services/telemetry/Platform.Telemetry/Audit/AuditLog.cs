using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Platform.EventSourcing;

namespace Platform.Telemetry.Audit;

/// <summary>
/// Every integration event of every service, stored once (by event id) in one global order. Positions are
/// taken from one row held until commit, so a reader tailing the log (the live stream) never skips an entry
/// that commits late; each insert notifies <see cref="Channel"/>.
/// </summary>
public sealed class AuditLog(NpgsqlDataSource dataSource)
{
    public const string Channel = "telemetry_audit";

    public static SchemaMigration Migration { get; } = new("audit-log", 1, """
        CREATE TABLE {schema}.audit_position (id int PRIMARY KEY CHECK (id = 1), last bigint NOT NULL);
        INSERT INTO {schema}.audit_position VALUES (1, 0);
        CREATE TABLE {schema}.audit_events (
            position bigint PRIMARY KEY,
            event_id uuid NOT NULL UNIQUE,
            event_type text NOT NULL,
            source text NOT NULL,
            stream_id text,
            tenant_id uuid,
            actor text,
            correlation_id uuid,
            occurred_at timestamptz NOT NULL,
            recorded_at timestamptz NOT NULL,
            data jsonb NOT NULL
        );
        CREATE INDEX ON {schema}.audit_events (tenant_id, position);
        CREATE INDEX ON {schema}.audit_events (event_type, position);
        CREATE INDEX ON {schema}.audit_events (occurred_at);
        """);

    /// <summary>Each entry's version in its stream, so that an entry can link to the state it produced.</summary>
    public static SchemaMigration StreamVersionMigration { get; } = new("audit-log", 2, "ALTER TABLE {schema}.audit_events ADD COLUMN stream_version bigint");

    /// <summary>
    /// Records the events that are not there yet, in the order given, in one statement: the new ones take
    /// consecutive positions. Returns how many were new.
    /// </summary>
    public async Task<int> RecordAsync(IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            WITH incoming AS (
                SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::uuid[], $8::timestamptz[], $9::text[], $10::bigint[])
                    WITH ORDINALITY AS e(event_id, event_type, source, stream_id, tenant_id, actor, correlation_id, occurred_at, data, stream_version, n)
            ), fresh AS (
                SELECT DISTINCT ON (event_id) * FROM incoming
                WHERE NOT EXISTS (SELECT 1 FROM {TelemetryService.Schema}.audit_events a WHERE a.event_id = incoming.event_id)
                ORDER BY event_id, n
            ), numbered AS (
                SELECT fresh.*, row_number() OVER (ORDER BY n) AS k, count(*) OVER () AS total FROM fresh
            ), reserved AS (
                UPDATE {TelemetryService.Schema}.audit_position SET last = last + (SELECT count(*) FROM numbered)
                WHERE id = 1 AND EXISTS (SELECT 1 FROM numbered)
                RETURNING last
            ), inserted AS (
                INSERT INTO {TelemetryService.Schema}.audit_events
                    (position, event_id, event_type, source, stream_id, stream_version, tenant_id, actor, correlation_id, occurred_at, recorded_at, data)
                SELECT reserved.last - numbered.total + numbered.k, event_id, event_type, source, stream_id, stream_version, tenant_id, actor, correlation_id, occurred_at, now(), data::jsonb
                FROM numbered, reserved
                ON CONFLICT (event_id) DO NOTHING
                RETURNING position
            )
            SELECT count(*), pg_notify('{Channel}', max(position)::text) FROM inserted HAVING count(*) > 0
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = entries.Select(e => e.EventId).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = entries.Select(e => e.Type).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = entries.Select(e => e.Source).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = entries.Select(e => e.StreamId).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = entries.Select(e => e.TenantId).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid });
        command.Parameters.Add(new NpgsqlParameter { Value = entries.Select(e => e.Actor).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = entries.Select(e => e.CorrelationId).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid });
        command.Parameters.Add(new NpgsqlParameter { Value = entries.Select(e => e.OccurredAt).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter { Value = entries.Select(e => e.Data.GetRawText()).ToArray() });
        command.Parameters.Add(new NpgsqlParameter { Value = entries.Select(e => e.StreamVersion).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
        return await command.ExecuteScalarAsync(cancellationToken) is long count ? (int)count : 0;
    }

    public async Task<IReadOnlyList<AuditEntry>> ReadAsync(AuditQuery query, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            SELECT position, event_id, event_type, source, stream_id, tenant_id, actor, correlation_id, occurred_at, recorded_at, data::text, stream_version
            FROM {TelemetryService.Schema}.audit_events
            WHERE position > $1
              AND ($2 OR tenant_id = $3)
              AND ($4::text[] IS NULL OR event_type = ANY($4))
              AND ($5::text IS NULL OR stream_id = $5)
              AND ($6::text IS NULL OR actor = $6)
              AND ($7::timestamptz IS NULL OR occurred_at >= $7)
              AND ($8::timestamptz IS NULL OR occurred_at < $8)
            ORDER BY position {(query.Newest ? "DESC" : "ASC")}
            LIMIT $9
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = query.After });
        command.Parameters.Add(new NpgsqlParameter { Value = query.AllTenants });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)query.TenantId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)query.Types?.ToArray() ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)query.StreamId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)query.Actor ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)query.From ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)query.Until ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter { Value = query.Limit });
        var entries = new List<AuditEntry>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            entries.Add(new AuditEntry(
                reader.GetInt64(0),
                reader.GetGuid(1),
                reader.GetString(2),
                reader.GetString(3),
                reader.IsDBNull(4) ? null : reader.GetString(4),
                reader.IsDBNull(11) ? null : reader.GetInt64(11),
                reader.IsDBNull(5) ? null : reader.GetGuid(5),
                reader.IsDBNull(6) ? null : reader.GetString(6),
                reader.IsDBNull(7) ? null : reader.GetGuid(7),
                reader.GetFieldValue<DateTimeOffset>(8),
                reader.GetFieldValue<DateTimeOffset>(9),
                JsonDocument.Parse(reader.GetString(10)).RootElement.Clone()));
        }

        if (query.Newest)
        {
            entries.Reverse();
        }

        return entries;
    }

    /// <summary>The last position handed out (0 for an empty log).</summary>
    public async Task<long> HeadAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT last FROM {TelemetryService.Schema}.audit_position WHERE id = 1");
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>A connection listening on <see cref="Channel"/>, for a reader that waits for new entries.</summary>
    public async Task<NpgsqlConnection> ListenAsync(CancellationToken cancellationToken)
    {
        var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var listen = new NpgsqlCommand($"LISTEN {Channel}", connection);
        await listen.ExecuteNonQueryAsync(cancellationToken);
        return connection;
    }
}
