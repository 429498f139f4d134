using System.Text.Json;
using Npgsql;
using Platform.Contracts;

namespace Platform.EventSourcing;

public sealed partial class EventStore
{
    private const string Columns = "position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at";

    /// <summary>Reads a stream forward from <paramref name="fromVersion"/> (the first event is version 1).</summary>
    public async Task<IReadOnlyList<StoredEvent>> ReadStreamAsync(string streamId, long fromVersion = 1, CancellationToken cancellationToken = default)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand(
            $"SELECT {Columns} FROM {Schema}.events WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version", connection)
        {
            Parameters = { new() { Value = streamId }, new() { Value = fromVersion } },
        };
        return await ReadEventsAsync(command, cancellationToken);
    }

    /// <summary>Reads up to <paramref name="maxCount"/> events of every stream in global order, after <paramref name="afterPosition"/>.</summary>
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
        await using var command = new NpgsqlCommand(
            $"SELECT {Columns} FROM {Schema}.events WHERE position > $1 ORDER BY position LIMIT $2", connection, transaction)
        {
            Parameters = { new() { Value = afterPosition }, new() { Value = maxCount } },
        };
        return await ReadEventsAsync(command, cancellationToken);
    }

    /// <summary>The highest committed global position (0 for an empty store).</summary>
    public async Task<long> ReadHeadPositionAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand($"SELECT last FROM {Schema}.global_position WHERE id = 1", connection);
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>The stream's version: the number of events in it, 0 when it does not exist.</summary>
    public async Task<long> ReadStreamVersionAsync(string streamId, CancellationToken cancellationToken = default)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        return await ReadStreamVersionAsync(connection, null, streamId, cancellationToken);
    }

    /// <summary>Folds a stream into an aggregate's state with <paramref name="evolve"/>; a missing stream gives a null state at version 0.</summary>
    public async Task<Rehydrated<TState>> LoadAsync<TState>(string streamId, Func<TState?, object, TState> evolve, CancellationToken cancellationToken = default)
        where TState : class
    {
        TState? state = null;
        long version = 0;
        foreach (var stored in await ReadStreamAsync(streamId, 1, cancellationToken))
        {
            state = evolve(state, stored.Data);
            version = stored.StreamVersion;
        }

        return new Rehydrated<TState>(state, version);
    }

    private async Task<long> ReadStreamVersionAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string streamId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"SELECT version FROM {Schema}.streams WHERE stream_id = $1", connection, transaction)
        {
            Parameters = { new() { Value = streamId } },
        };
        return await command.ExecuteScalarAsync(cancellationToken) is long version ? version : 0;
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
                JsonSerializer.Deserialize<EventMetadata>(reader.GetString(6), PlatformJson.Options) ?? EventMetadata.None,
                reader.GetFieldValue<DateTimeOffset>(7)));
        }

        return events;
    }

    private object DeserializeData(string type, string json) =>
        Types.TypeOf(type) is { } clrType
            ? JsonSerializer.Deserialize(json, clrType, PlatformJson.Options)!
            : JsonDocument.Parse(json).RootElement.Clone();
}
