using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Platform.Contracts;

using Platform.EventSourcing.Subscriptions;

namespace Platform.EventSourcing;

public sealed partial class EventStore
{
    /// <summary>Appends <paramref name="events"/> to one stream in a transaction of its own.</summary>
    public async Task<AppendResult> AppendAsync(
        string streamId,
        ExpectedVersion expected,
        IReadOnlyList<object> events,
        EventMetadata? metadata = null,
        CancellationToken cancellationToken = default)
    {
        await using var session = await BeginSessionAsync(cancellationToken);
        session.Append(streamId, expected, events, metadata);
        var results = await session.CommitAsync(cancellationToken);
        return results[0];
    }

    /// <summary>Opens a transaction for a handler's own writes and appends; commit it with <see cref="EventStoreSession.CommitAsync"/>.</summary>
    public async Task<EventStoreSession> BeginSessionAsync(CancellationToken cancellationToken = default)
    {
        var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            var transaction = await connection.BeginTransactionAsync(cancellationToken);
            return new EventStoreSession(this, connection, transaction);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    internal async Task<IReadOnlyList<AppendResult>> WriteAsync(
        NpgsqlConnection connection,
        NpgsqlTransaction transaction,
        IReadOnlyList<PendingAppend> pending,
        CancellationToken cancellationToken)
    {
        // Streams in a fixed order so that two sessions touching the same streams cannot deadlock.
        var ordered = pending.OrderBy(p => p.StreamId, StringComparer.Ordinal).ToArray();
        var total = ordered.Sum(p => p.Events.Count);
        var now = _time.GetUtcNow();

        var (newVersions, lastPosition, refused) = await ReserveAsync(connection, transaction, ordered, total, now, cancellationToken);
        if (refused is { } index)
        {
            var actual = await ReadStreamVersionAsync(connection, transaction, ordered[index].StreamId, cancellationToken);
            throw new WrongExpectedVersionException(ordered[index].StreamId, ordered[index].Expected, actual);
        }

        var stored = new StoredEvent[total];
        var positions = new long[total];
        var streamIds = new string[total];
        var versions = new long[total];
        var eventIds = new Guid[total];
        var types = new string[total];
        var data = new string[total];
        var metadata = new string[total];
        var results = new Dictionary<string, AppendResult>(StringComparer.Ordinal);
        var i = 0;
        var position = lastPosition - total;
        for (var s = 0; s < ordered.Length; s++)
        {
            var append = ordered[s];
            var version = newVersions[s] - append.Events.Count;
            var metadataJson = JsonSerializer.Serialize(append.Metadata, PlatformJson.Options);
            foreach (var @event in append.Events)
            {
                positions[i] = ++position;
                streamIds[i] = append.StreamId;
                versions[i] = ++version;
                eventIds[i] = Guid.CreateVersion7(now);
                types[i] = Types.NameOf(@event.GetType());
                data[i] = JsonSerializer.Serialize(@event, @event.GetType(), PlatformJson.Options);
                metadata[i] = metadataJson;
                stored[i] = new StoredEvent(positions[i], append.StreamId, versions[i], eventIds[i], types[i], @event, append.Metadata, now);
                i++;
            }

            results[append.StreamId] = new AppendResult(append.StreamId, newVersions[s], position);
        }

        await using (var insert = new NpgsqlBatch(connection, transaction))
        {
            insert.BatchCommands.Add(new NpgsqlBatchCommand(
                $"""
                INSERT INTO {Schema}.events (position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
                SELECT p, s, v, i, t, d::jsonb, m::jsonb, $8
                FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::text[], $7::text[]) AS e(p, s, v, i, t, d, m)
                """)
            {
                Parameters =
                {
                    new() { Value = positions },
                    new() { Value = streamIds },
                    new() { Value = versions },
                    new() { Value = eventIds },
                    new() { Value = types },
                    new() { Value = data },
                    new() { Value = metadata },
                    new() { Value = now, NpgsqlDbType = NpgsqlDbType.TimestampTz },
                },
            });
            insert.BatchCommands.Add(new NpgsqlBatchCommand("SELECT pg_notify($1, $2)")
            {
                Parameters = { new() { Value = NotificationChannel }, new() { Value = lastPosition.ToString(System.Globalization.CultureInfo.InvariantCulture) } },
            });
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        foreach (var projection in _options.InlineProjections)
        {
            await projection.ApplyAsync(stored, transaction, cancellationToken);
        }

        return pending.Select(p => results[p.StreamId]).ToArray();
    }

    /// <summary>One round trip: check and bump every stream's version, then take the global position row (held until commit).</summary>
    private async Task<(long[] NewVersions, long LastPosition, int? Refused)> ReserveAsync(
        NpgsqlConnection connection,
        NpgsqlTransaction transaction,
        PendingAppend[] ordered,
        int total,
        DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        await using var batch = new NpgsqlBatch(connection, transaction);
        foreach (var append in ordered)
        {
            batch.BatchCommands.Add(VersionCommand(append, now));
        }

        batch.BatchCommands.Add(new NpgsqlBatchCommand($"UPDATE {Schema}.global_position SET last = last + $1 WHERE id = 1 RETURNING last")
        {
            Parameters = { new() { Value = (long)total } },
        });

        var newVersions = new long[ordered.Length];
        int? refused = null;
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        for (var s = 0; s < ordered.Length; s++)
        {
            if (await reader.ReadAsync(cancellationToken))
            {
                newVersions[s] = reader.GetInt64(0);
            }
            else
            {
                refused ??= s;
            }

            await reader.NextResultAsync(cancellationToken);
        }

        await reader.ReadAsync(cancellationToken);
        var lastPosition = reader.GetInt64(0);
        return (newVersions, lastPosition, refused);
    }

    private NpgsqlBatchCommand VersionCommand(PendingAppend append, DateTimeOffset now)
    {
        long count = append.Events.Count;
        var command = append.Expected switch
        {
            { IsAny: true } => new NpgsqlBatchCommand(
                $"""
                INSERT INTO {Schema}.streams AS s (stream_id, version, created_at, updated_at) VALUES ($1, $2, $3, $3)
                ON CONFLICT (stream_id) DO UPDATE SET version = s.version + EXCLUDED.version, updated_at = EXCLUDED.updated_at
                RETURNING version
                """),
            { IsNoStream: true } => new NpgsqlBatchCommand(
                $"""
                INSERT INTO {Schema}.streams (stream_id, version, created_at, updated_at) VALUES ($1, $2, $3, $3)
                ON CONFLICT (stream_id) DO NOTHING
                RETURNING version
                """),
            _ => new NpgsqlBatchCommand(
                $"UPDATE {Schema}.streams SET version = version + $2, updated_at = $3 WHERE stream_id = $1 AND version = $4 RETURNING version"),
        };
        command.Parameters.Add(new() { Value = append.StreamId });
        command.Parameters.Add(new() { Value = count });
        command.Parameters.Add(new() { Value = now, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        if (append.Expected is { IsAny: false, IsNoStream: false })
        {
            command.Parameters.Add(new() { Value = append.Expected.Value });
        }

        return command;
    }
}
