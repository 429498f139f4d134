using Platform.EventSourcing;

namespace Platform.Unit.Tests;

/// <summary>
/// Streams in memory with the event store's version rules, for deciding in the fast tier: an append that expects another
/// version than the stream's is refused with <see cref="WrongExpectedVersionException"/> and writes nothing, as
/// <see cref="EventStore"/> refuses it.
/// </summary>
public sealed class InMemoryEventStreams : IEventStreams
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, List<(object Event, EventMetadata Metadata)>> _streams = [];
    private long _position;

    /// <summary>Appends before the test's "when", expecting nothing of the stream.</summary>
    public void Given(string streamId, params object[] events)
    {
        lock (_lock)
        {
            Stream(streamId).AddRange(events.Select(e => (e, EventMetadata.None)));
        }
    }

    /// <summary>The stream's events, in order.</summary>
    public IReadOnlyList<object> Read(string streamId)
    {
        lock (_lock)
        {
            return _streams.TryGetValue(streamId, out var events) ? events.Select(e => e.Event).ToArray() : [];
        }
    }

    /// <summary>The metadata each event of the stream was appended with, in order.</summary>
    public IReadOnlyList<EventMetadata> MetadataOf(string streamId)
    {
        lock (_lock)
        {
            return _streams.TryGetValue(streamId, out var events) ? events.Select(e => e.Metadata).ToArray() : [];
        }
    }

    public Task<Rehydrated<TState>> LoadAsync<TState>(string streamId, Func<TState?, object, TState> evolve, CancellationToken cancellationToken = default)
        where TState : class
    {
        var events = Read(streamId);
        return Task.FromResult(new Rehydrated<TState>(events.Aggregate((TState?)null, evolve), events.Count));
    }

    public Task<IReadOnlyList<AppendResult>> AppendAsync(IReadOnlyList<StreamAppend> appends, EventMetadata metadata, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            foreach (var append in appends)
            {
                var version = _streams.TryGetValue(append.StreamId, out var events) ? events.Count : 0;
                var expected = append.Expected;
                if (!expected.IsAny && (expected.IsNoStream ? version != 0 : version != expected.Value))
                {
                    throw new WrongExpectedVersionException(append.StreamId, expected, version);
                }
            }

            return Task.FromResult<IReadOnlyList<AppendResult>>(appends.Select(append =>
            {
                var stream = Stream(append.StreamId);
                stream.AddRange(append.Events.Select(e => (e, metadata)));
                _position += append.Events.Count;
                return new AppendResult(append.StreamId, stream.Count, _position);
            }).ToArray());
        }
    }

    private List<(object Event, EventMetadata Metadata)> Stream(string streamId) =>
        _streams.TryGetValue(streamId, out var events) ? events : _streams[streamId] = [];
}
