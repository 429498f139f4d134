using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Platform.Contracts;

namespace Platform.EventSourcing;

public sealed partial class EventStore
{
    private const string WrongExpectedVersionState = "PW409";

    /// <summary>
    /// Appends <paramref name="events"/> to one stream in a transaction of its own. Without inline projections
    /// this is one round trip: the version check, the insert and the commit travel as one implicit transaction,
    /// so the global order is held only while PostgreSQL inserts and commits. At most
    /// <see cref="EventStoreOptions.MaxConcurrentAppends"/> run at once; the others wait for their turn without a connection.
    /// </summary>
    public async Task<AppendResult> AppendAsync(
        string streamId,
        ExpectedVersion expected,
        IReadOnlyList<object> events,
        EventMetadata? metadata = null,
        CancellationToken cancellationToken = default)
    {
        var append = new PendingAppend(streamId, expected, events, metadata ?? EventMetadata.None);
        EventStoreSession.Validate(append);
        await _appending.WaitAsync(cancellationToken);
        try
        {
            if (_options.InlineProjections.Count > 0)
            {
                await using var session = await BeginSessionAsync(cancellationToken);
                session.Append(streamId, expected, events, metadata);
                return (await session.CommitAsync(cancellationToken))[0];
            }

            return await AppendInOneRoundTripAsync(append, cancellationToken);
        }
        finally
        {
            _appending.Release();
        }
    }

    private async Task<AppendResult> AppendInOneRoundTripAsync(PendingAppend append, CancellationToken cancellationToken)
    {
        var (streamId, expected, events, _) = append;
        var now = _time.GetUtcNow();
        var encoded = Encode([append], now);
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        await using var batch = new NpgsqlBatch(connection);
        batch.BatchCommands.Add(VersionCommand(append, now));
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            $"""
            WITH current AS (
                SELECT version FROM {Schema}.streams WHERE stream_id = $1
            ), reserved AS (
                UPDATE {Schema}.global_position SET last = last + $2 WHERE id = 1 RETURNING last
            ), inserted AS (
                INSERT INTO {Schema}.events (position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
                SELECT reserved.last - $2 + e.n, $1, current.version - $2 + e.n, e.i, e.t, e.d::jsonb, e.m::jsonb, $6
                FROM reserved, current, unnest($3::uuid[], $4::text[], $5::text[], $7::text[]) WITH ORDINALITY AS e(i, t, d, m, n)
            )
            SELECT reserved.last, pg_notify($8, reserved.last::text) FROM reserved
            """)
        {
            Parameters =
            {
                new() { Value = streamId },
                new() { Value = (long)events.Count },
                new() { Value = encoded.EventIds },
                new() { Value = encoded.Types },
                new() { Value = encoded.Data },
                new() { Value = now, NpgsqlDbType = NpgsqlDbType.TimestampTz },
                new() { Value = encoded.Metadata },
                new() { Value = NotificationChannel },
            },
        });

        try
        {
            // Prepared once per physical connection (Npgsql keeps it across pool rentals): no parse or plan per append.
            await batch.PrepareAsync(cancellationToken);
            await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            var version = reader.GetInt64(0);
            await reader.NextResultAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            return new AppendResult(streamId, version, reader.GetInt64(0));
        }
        catch (PostgresException exception) when (exception.SqlState == WrongExpectedVersionState)
        {
            // The implicit transaction is over: the same connection reads the version (a second one could wait for a pool this one helps exhaust).
            throw new WrongExpectedVersionException(streamId, expected, await ReadStreamVersionAsync(connection, null, streamId, CancellationToken.None));
        }
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
        var encoded = Encode(ordered, now);

        // Round trip 1: check and bump every stream's version (row locks on those streams only).
        var newVersions = new long[ordered.Length];
        await using (var check = new NpgsqlBatch(connection, transaction))
        {
            foreach (var append in ordered)
            {
                check.BatchCommands.Add(VersionCommand(append, now));
            }

            // Statements run in order and the first refusal aborts the rest: the refused stream is the first unread one.
            var read = 0;
            try
            {
                await check.PrepareAsync(cancellationToken);
                await using var reader = await check.ExecuteReaderAsync(cancellationToken);
                for (read = 0; read < ordered.Length; read++)
                {
                    if (read > 0)
                    {
                        await reader.NextResultAsync(cancellationToken);
                    }

                    await reader.ReadAsync(cancellationToken);
                    newVersions[read] = reader.GetInt64(0);
                }
            }
            catch (PostgresException exception) when (exception.SqlState == WrongExpectedVersionState)
            {
                // The session is refused: end its transaction and read the version on its own connection, not on a second one
                // that a full pool would make it wait for while it holds this one.
                var refused = ordered[read];
                await transaction.RollbackAsync(CancellationToken.None);
                throw new WrongExpectedVersionException(refused.StreamId, refused.Expected, await ReadStreamVersionAsync(connection, null, refused.StreamId, CancellationToken.None));
            }
        }

        var versions = new long[total];
        for (int s = 0, i = 0; s < ordered.Length; s++)
        {
            for (var k = ordered[s].Events.Count - 1; k >= 0; k--)
            {
                versions[i + k] = newVersions[s] - (ordered[s].Events.Count - 1 - k);
            }

            i += ordered[s].Events.Count;
        }

        // Inline projections write their tables before the global position is taken, so that their round trips are not part
        // of the ordered section that every append of the store waits for. The events have no position yet (0).
        if (_options.InlineProjections.Count > 0)
        {
            var unpositioned = new StoredEvent[total];
            for (int s = 0, i = 0; s < ordered.Length; s++)
            {
                foreach (var @event in ordered[s].Events)
                {
                    unpositioned[i] = new StoredEvent(0, ordered[s].StreamId, versions[i], encoded.EventIds[i], encoded.Types[i], @event, ordered[s].Metadata, now);
                    i++;
                }
            }

            foreach (var projection in _options.InlineProjections)
            {
                await projection.ApplyAsync(unpositioned, transaction, cancellationToken);
            }
        }

        // Round trip 2: take the global position row, insert and notify in one statement. The row stays
        // locked until commit, so the ordered section is this statement's tail and the commit.
        await using var insert = new NpgsqlCommand(
            $"""
            WITH reserved AS (
                UPDATE {Schema}.global_position SET last = last + $9 WHERE id = 1 RETURNING last
            ), inserted AS (
                INSERT INTO {Schema}.events (position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
                SELECT reserved.last - $9 + e.n, e.s, e.v, e.i, e.t, e.d::jsonb, e.m::jsonb, $7
                FROM reserved, unnest($1::text[], $2::bigint[], $3::uuid[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS e(s, v, i, t, d, m, n)
            )
            SELECT last, pg_notify($8, last::text) FROM reserved
            """,
            connection,
            transaction)
        {
            Parameters =
            {
                new() { Value = encoded.StreamIds },
                new() { Value = versions },
                new() { Value = encoded.EventIds },
                new() { Value = encoded.Types },
                new() { Value = encoded.Data },
                new() { Value = encoded.Metadata },
                new() { Value = now, NpgsqlDbType = NpgsqlDbType.TimestampTz },
                new() { Value = NotificationChannel },
                new() { Value = (long)total },
            },
        };
        await insert.PrepareAsync(cancellationToken);
        var lastPosition = (long)(await insert.ExecuteScalarAsync(cancellationToken))!;

        var results = new Dictionary<string, AppendResult>(StringComparer.Ordinal);
        var position = lastPosition - total;
        for (var s = 0; s < ordered.Length; s++)
        {
            position += ordered[s].Events.Count;
            results[ordered[s].StreamId] = new AppendResult(ordered[s].StreamId, newVersions[s], position);
        }

        return pending.Select(p => results[p.StreamId]).ToArray();
    }

    /// <summary>Serialises every event before anything is written, so an unmapped type fails without touching the store.</summary>
    private EncodedEvents Encode(IReadOnlyList<PendingAppend> appends, DateTimeOffset now)
    {
        var total = appends.Sum(a => a.Events.Count);
        var encoded = new EncodedEvents(new string[total], new Guid[total], new string[total], new string[total], new string[total]);
        var i = 0;
        foreach (var append in appends)
        {
            var metadata = JsonSerializer.Serialize(append.Metadata.WithCurrentTrace(), PlatformJson.Options);
            foreach (var @event in append.Events)
            {
                encoded.StreamIds[i] = append.StreamId;
                encoded.EventIds[i] = Guid.CreateVersion7(now);
                encoded.Types[i] = Types.NameOf(@event.GetType());
                encoded.Data[i] = JsonSerializer.Serialize(@event, @event.GetType(), PlatformJson.Options);
                encoded.Metadata[i] = metadata;
                i++;
            }
        }

        return encoded;
    }

    /// <summary>Bumps the stream's version and returns the new one, or fails with <c>PW409</c> when the expectation does not hold.</summary>
    private NpgsqlBatchCommand VersionCommand(PendingAppend append, DateTimeOffset now)
    {
        var change = append.Expected switch
        {
            { IsAny: true } => $"""
                INSERT INTO {Schema}.streams AS s (stream_id, version, created_at, updated_at) VALUES ($1, $2, $3, $3)
                ON CONFLICT (stream_id) DO UPDATE SET version = s.version + EXCLUDED.version, updated_at = EXCLUDED.updated_at
                RETURNING version
                """,
            { IsNoStream: true } => $"""
                INSERT INTO {Schema}.streams (stream_id, version, created_at, updated_at) VALUES ($1, $2, $3, $3)
                ON CONFLICT (stream_id) DO NOTHING
                RETURNING version
                """,
            _ => $"UPDATE {Schema}.streams SET version = version + $2, updated_at = $3 WHERE stream_id = $1 AND version = $4 RETURNING version",
        };
        var command = new NpgsqlBatchCommand($"WITH changed AS ({change}) SELECT {Schema}.require_stream_version($1, (SELECT version FROM changed))");
        command.Parameters.Add(new() { Value = append.StreamId });
        command.Parameters.Add(new() { Value = (long)append.Events.Count });
        command.Parameters.Add(new() { Value = now, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        if (append.Expected is { IsAny: false, IsNoStream: false })
        {
            command.Parameters.Add(new() { Value = append.Expected.Value });
        }

        return command;
    }

    private sealed record EncodedEvents(string[] StreamIds, Guid[] EventIds, string[] Types, string[] Data, string[] Metadata);
}
