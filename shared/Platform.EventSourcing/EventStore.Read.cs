using System.Text.Json;
using Npgsql;
using Platform.Contracts;

namespace Platform.EventSourcing;

/// <summary>
/// Reads Marten's event rows in one statement each and decodes them with the service's <see cref="EventTypeRegistry"/>:
/// an event whose stored name this process does not map reads back as JSON (Marten's own reader would fail on it), so a
/// reader older or newer than the writer never stops on history it does not know. Marten's tombstones (the events it
/// writes, after a failed append, at the positions that append had drawn) are no events of the service and are left out.
/// </summary>
public sealed partial class EventStore
{
    private const string Columns = "seq_id, stream_id, version, id, type, data, headers, timestamp";
    private const string NoTombstones = "stream_id <> 'mt_tombstone'";

    /// <summary>Reads a stream forward from <paramref name="fromVersion"/> (the first event is version 1).</summary>
    public Task<IReadOnlyList<StoredEvent>> ReadStreamAsync(string streamId, long fromVersion = 1, CancellationToken cancellationToken = default) =>
        ReadStreamAsync(streamId, fromVersion, long.MaxValue, DateTimeOffset.MaxValue, cancellationToken);

    /// <summary>
    /// Reads a stream from <paramref name="fromVersion"/> up to <paramref name="toVersion"/> and no later than
    /// <paramref name="recordedUntil"/>: the stream as it stood at that version or time.
    /// </summary>
    public async Task<IReadOnlyList<StoredEvent>> ReadStreamAsync(string streamId, long fromVersion, long toVersion, DateTimeOffset recordedUntil, CancellationToken cancellationToken = default)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand(
            $"SELECT {Columns} FROM {Schema}.mt_events WHERE stream_id = $1 AND version >= $2 AND version <= $3 AND timestamp <= $4 ORDER BY version", connection)
        {
            Parameters = { new() { Value = streamId }, new() { Value = fromVersion }, new() { Value = toVersion }, new() { Value = recordedUntil } },
        };
        return await ReadEventsAsync(command, cancellationToken);
    }

    /// <summary>
    /// Reads up to <paramref name="maxCount"/> events of every stream in global order, after <paramref name="afterPosition"/>,
    /// and none beyond a position that an append still running could commit below: a reader that goes on from the last
    /// position it read never passes over an event.
    /// </summary>
    public async Task<IReadOnlyList<StoredEvent>> ReadAllAsync(long afterPosition, int maxCount, CancellationToken cancellationToken = default)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        return await ReadAllAsync(connection, null, afterPosition, maxCount, cancellationToken);
    }

    internal async Task<IReadOnlyList<StoredEvent>> ReadAllAsync(
        NpgsqlConnection connection,
        NpgsqlTransaction? transaction,
        long afterPosition,
        int maxCount,
        CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxCount);
        var settled = await ReadSettledPositionAsync(connection, transaction, cancellationToken);
        if (settled <= afterPosition)
        {
            return [];
        }

        // The settled bound is applied to what comes back, not in the statement: with one range on seq_id the planner walks
        // its index in order and stops at the limit, where a second range can make it scan and sort the whole table.
        await using var command = new NpgsqlCommand(
            $"SELECT {Columns} FROM {Schema}.mt_events WHERE seq_id > $1 AND {NoTombstones} ORDER BY seq_id LIMIT $2", connection, transaction)
        {
            Parameters = { new() { Value = afterPosition }, new() { Value = maxCount } },
        };
        var events = await ReadEventsAsync(command, cancellationToken);
        return events.Count == 0 || events[^1].Position <= settled ? events : events.TakeWhile(e => e.Position <= settled).ToArray();
    }

    /// <summary>
    /// The highest position below which no append is still running: the sequence's last value, read before waiting (with the
    /// append-order lock, exclusively, at once given back) until every append that held the lock then has ended. Every
    /// position up to it is committed or will never be. Appends that start meanwhile wait for that moment too.
    /// </summary>
    private async Task<long> ReadSettledPositionAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        await using var batch = new NpgsqlBatch(connection, transaction)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand($"SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {Schema}.mt_events_sequence"),
                new NpgsqlBatchCommand("SELECT pg_advisory_lock(hashtextextended($1, 0)), pg_advisory_unlock(hashtextextended($1, 0))")
                {
                    Parameters = { new() { Value = AppendOrder.LockName(Schema) } },
                },
            },
        };
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        var settled = reader.GetInt64(0);
        await reader.NextResultAsync(cancellationToken);
        return settled;
    }

    /// <summary>
    /// The highest committed global position (0 for an empty store). It waits for no append: an append still running may
    /// commit below it, so a reader that must see every event starts from a checkpoint and reads with <see cref="ReadAllAsync(long, int, CancellationToken)"/>.
    /// </summary>
    public async Task<long> ReadHeadPositionAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand($"SELECT coalesce(max(seq_id), 0) FROM {Schema}.mt_events WHERE {NoTombstones}", connection);
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>The stream's version: the number of events in it, 0 when it does not exist.</summary>
    public async Task<long> ReadStreamVersionAsync(string streamId, CancellationToken cancellationToken = default)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        return await ReadStreamVersionAsync(connection, streamId, cancellationToken);
    }

    /// <summary>Folds a stream into an aggregate's state with <paramref name="evolve"/>; a missing stream gives a null state at version 0.</summary>
    public async Task<Rehydrated<TState>> LoadAsync<TState>(string streamId, Func<TState?, object, TState> evolve, CancellationToken cancellationToken = default)
        where TState : class =>
        Fold(await ReadStreamAsync(streamId, 1, cancellationToken), evolve);

    /// <summary>The aggregate as it stood at <paramref name="version"/> or at <paramref name="at"/>, whichever comes first.</summary>
    public async Task<Rehydrated<TState>> LoadAsOfAsync<TState>(string streamId, Func<TState?, object, TState> evolve, long? version, DateTimeOffset? at, CancellationToken cancellationToken = default)
        where TState : class =>
        Fold(await ReadStreamAsync(streamId, 1, version ?? long.MaxValue, at ?? DateTimeOffset.MaxValue, cancellationToken), evolve);

    internal async Task<long> ReadStreamVersionAsync(NpgsqlConnection connection, string streamId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"SELECT version FROM {Schema}.mt_streams WHERE id = $1", connection)
        {
            Parameters = { new() { Value = streamId } },
        };
        return await command.ExecuteScalarAsync(cancellationToken) is long version ? version : 0;
    }

    private static Rehydrated<TState> Fold<TState>(IReadOnlyList<StoredEvent> events, Func<TState?, object, TState> evolve)
        where TState : class
    {
        TState? state = null;
        long version = 0;
        foreach (var stored in events)
        {
            state = evolve(state, stored.Data);
            version = stored.StreamVersion;
        }

        return new Rehydrated<TState>(state, version);
    }

    private async Task<IReadOnlyList<StoredEvent>> ReadEventsAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        var events = new List<StoredEvent>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var type = reader.GetString(4);
            events.Add(new StoredEvent(
                reader.GetInt64(0),
                reader.GetString(1),
                reader.GetInt64(2),
                reader.GetGuid(3),
                type,
                DeserializeData(type, reader.GetString(5)),
                StoredMetadata.Read(reader.IsDBNull(6) ? null : reader.GetString(6)),
                reader.GetFieldValue<DateTimeOffset>(7)));
        }

        return events;
    }

    private object DeserializeData(string type, string json) =>
        Types.TypeOf(type) is { } clrType
            ? JsonSerializer.Deserialize(json, clrType, PlatformJson.Options)!
            : JsonDocument.Parse(json).RootElement.Clone();
}
