using JasperFx;
using JasperFx.Events;
using Marten;
using Marten.Services;
using Npgsql;
using Platform.EventSourcing.Subscriptions;

namespace Platform.EventSourcing;

/// <summary>
/// One PostgreSQL transaction in which a handler does its own writes (inbox row, read model rows) and appends events
/// through Marten; everything commits together or not at all. Disposing without committing rolls back.
/// </summary>
public sealed class EventStoreSession : IAsyncDisposable
{
    private readonly EventStore _store;
    private readonly IReadOnlyList<IProjection> _inlineProjections;
    private readonly TimeProvider _time;
    private readonly List<PendingAppend> _pending = [];
    private bool _completed;

    internal EventStoreSession(EventStore store, NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlyList<IProjection> inlineProjections, TimeProvider time)
    {
        _store = store;
        _inlineProjections = inlineProjections;
        _time = time;
        Connection = connection;
        Transaction = transaction;
    }

    public NpgsqlConnection Connection { get; }

    public NpgsqlTransaction Transaction { get; }

    /// <summary>Queues events for <paramref name="streamId"/>; the version check and the write happen at commit.</summary>
    public void Append(string streamId, ExpectedVersion expected, IReadOnlyList<object> events, EventMetadata? metadata = null)
    {
        var append = new PendingAppend(streamId, expected, events, metadata ?? EventMetadata.None);
        Validate(append, _store.Types);
        if (_pending.Any(p => p.StreamId == streamId))
        {
            throw new InvalidOperationException($"Stream '{streamId}' already has an append in this session; append its events together.");
        }

        _pending.Add(append);
    }

    /// <summary>Refuses an append that could not be stored, before anything is written: no stream, no events, or an unmapped type.</summary>
    internal static void Validate(PendingAppend append, EventTypeRegistry types)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(append.StreamId, "streamId");
        if (append.Events.Count == 0)
        {
            throw new ArgumentException("An append needs at least one event.", "events");
        }

        foreach (var @event in append.Events)
        {
            types.NameOf(@event.GetType());
        }
    }

    /// <summary>
    /// Checks every expected version, writes the events, applies the inline projections and commits; throws
    /// <see cref="WrongExpectedVersionException"/> and writes nothing on a lost race.
    /// </summary>
    public async Task<IReadOnlyList<AppendResult>> CommitAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        var results = _pending.Count == 0 ? [] : await WriteAsync(cancellationToken);
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

    private async Task<IReadOnlyList<AppendResult>> WriteAsync(CancellationToken cancellationToken)
    {
        // Streams in a fixed order so that two sessions touching the same streams cannot deadlock.
        var ordered = _pending.OrderBy(p => p.StreamId, StringComparer.Ordinal).ToArray();
        var now = _time.GetUtcNow();
        await using var marten = _store.Marten.LightweightSession(SessionOptions.ForTransaction(Transaction));
        marten.QueueOperation(new AppendOrder(_store.Schema, _store.NotificationChannel, ordered.Select(a => a.StreamId).ToArray()));
        var staged = ordered.Select(append => (Append: append, Stream: Stage(marten, append, now))).ToArray();
        try
        {
            await marten.SaveChangesAsync(cancellationToken);
        }
        catch (Exception exception) when (exception is ConcurrencyException or ExistingStreamIdCollisionException or Marten.Exceptions.ExistingStreamIdCollisionException or EventStreamUnexpectedMaxEventIdException)
        {
            // The transaction is spent: end it, then name the first stream whose expectation does not hold, on this connection
            // (a second one could wait for a pool this one helps exhaust).
            await Transaction.RollbackAsync(CancellationToken.None);
            foreach (var append in ordered.Where(a => !a.Expected.IsAny))
            {
                var actual = await _store.ReadStreamVersionAsync(Connection, append.StreamId, CancellationToken.None);
                if (actual != (append.Expected.IsNoStream ? 0 : append.Expected.Value))
                {
                    throw new WrongExpectedVersionException(append.StreamId, append.Expected, actual);
                }
            }

            throw;
        }

        if (_inlineProjections.Count > 0)
        {
            var stored = staged.SelectMany(s => s.Stream.Events.Select(e =>
                new StoredEvent(e.Sequence, s.Append.StreamId, e.Version, e.Id, e.EventTypeName, e.Data, s.Append.Metadata, now))).ToArray();
            foreach (var projection in _inlineProjections)
            {
                await projection.ApplyAsync(stored, Transaction, cancellationToken);
            }
        }

        var results = staged.ToDictionary(s => s.Append.StreamId, s => new AppendResult(s.Append.StreamId, s.Stream.Version, s.Stream.Events[^1].Sequence), StringComparer.Ordinal);
        return _pending.Select(p => results[p.StreamId]).ToArray();
    }

    /// <summary>Hands one append to Marten with its expectation, and stamps each event with its id, time and metadata.</summary>
    private static StreamAction Stage(IDocumentSession marten, PendingAppend append, DateTimeOffset now)
    {
        var events = append.Events.ToArray();
        var stream = append.Expected switch
        {
            { IsAny: true } => marten.Events.Append(append.StreamId, events),
            { IsNoStream: true } => marten.Events.StartStream(append.StreamId, events),
            _ => marten.Events.Append(append.StreamId, append.Expected.Value + events.Length, events),
        };
        var metadata = append.Metadata.WithCurrentTrace();
        foreach (var @event in stream.Events)
        {
            @event.Id = Guid.CreateVersion7(now);
            @event.Timestamp = now;
            StoredMetadata.Write(metadata, @event);
        }

        return stream;
    }
}

internal sealed record PendingAppend(string StreamId, ExpectedVersion Expected, IReadOnlyList<object> Events, EventMetadata Metadata);
