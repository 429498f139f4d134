using Npgsql;

namespace Platform.EventSourcing;

/// <summary>
/// One PostgreSQL transaction in which a handler does its own writes (inbox row, read model rows) and
/// appends events; everything commits together or not at all. Disposing without committing rolls back.
/// </summary>
public sealed class EventStoreSession : IAsyncDisposable
{
    private readonly EventStore _store;
    private readonly List<PendingAppend> _pending = [];
    private bool _completed;

    internal EventStoreSession(EventStore store, NpgsqlConnection connection, NpgsqlTransaction transaction)
    {
        _store = store;
        Connection = connection;
        Transaction = transaction;
    }

    public NpgsqlConnection Connection { get; }

    public NpgsqlTransaction Transaction { get; }

    /// <summary>Queues events for <paramref name="streamId"/>; the version check and the write happen at commit.</summary>
    public void Append(string streamId, ExpectedVersion expected, IReadOnlyList<object> events, EventMetadata? metadata = null)
    {
        var append = new PendingAppend(streamId, expected, events, metadata ?? EventMetadata.None);
        Validate(append);
        if (_pending.Any(p => p.StreamId == streamId))
        {
            throw new InvalidOperationException($"Stream '{streamId}' already has an append in this session; append its events together.");
        }

        _pending.Add(append);
    }

    internal static void Validate(PendingAppend append)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(append.StreamId, "streamId");
        if (append.Events.Count == 0)
        {
            throw new ArgumentException("An append needs at least one event.", "events");
        }
    }

    /// <summary>Checks every expected version, writes the events and commits; throws <see cref="WrongExpectedVersionException"/> and writes nothing on a lost race.</summary>
    public async Task<IReadOnlyList<AppendResult>> CommitAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        var results = _pending.Count == 0 ? [] : await _store.WriteAsync(Connection, Transaction, _pending, cancellationToken);
        await Transaction.CommitAsync(cancellationToken);
        _completed = true;
        return results;
    }

    public async ValueTask DisposeAsync()
    {
        _completed = true;
        await Transaction.DisposeAsync();
        await Connection.DisposeAsync();
    }
}

internal sealed record PendingAppend(string StreamId, ExpectedVersion Expected, IReadOnlyList<object> Events, EventMetadata Metadata);
