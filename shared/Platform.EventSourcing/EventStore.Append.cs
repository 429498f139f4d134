namespace Platform.EventSourcing;

public sealed partial class EventStore
{
    /// <summary>
    /// Appends <paramref name="events"/> to one stream in a transaction of its own: the order lock, Marten's append and the
    /// notification travel in one batch, then the commit. At most <see cref="EventStoreOptions.MaxConcurrentAppends"/> run at
    /// once; the others wait for their turn without a connection.
    /// </summary>
    public async Task<AppendResult> AppendAsync(
        string streamId,
        ExpectedVersion expected,
        IReadOnlyList<object> events,
        EventMetadata? metadata = null,
        CancellationToken cancellationToken = default) =>
        (await AppendAsync([new StreamAppend(streamId, expected, events)], metadata ?? EventMetadata.None, cancellationToken))[0];

    /// <summary>Appends to several streams in one transaction of its own, under the same limit as a single append.</summary>
    public async Task<IReadOnlyList<AppendResult>> AppendAsync(IReadOnlyList<StreamAppend> appends, EventMetadata metadata, CancellationToken cancellationToken = default)
    {
        foreach (var append in appends)
        {
            EventStoreSession.Validate(new PendingAppend(append.StreamId, append.Expected, append.Events, metadata), Types);
        }

        await _appending.WaitAsync(cancellationToken);
        try
        {
            await using var session = await BeginSessionAsync(cancellationToken);
            foreach (var append in appends)
            {
                session.Append(append.StreamId, append.Expected, append.Events, metadata);
            }

            return await session.CommitAsync(cancellationToken);
        }
        finally
        {
            _appending.Release();
        }
    }

    /// <summary>Opens a transaction for a handler's own writes and appends; commit it with <see cref="EventStoreSession.CommitAsync"/>.</summary>
    public async Task<EventStoreSession> BeginSessionAsync(CancellationToken cancellationToken = default)
    {
        var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            var transaction = await connection.BeginTransactionAsync(cancellationToken);
            return new EventStoreSession(this, connection, transaction, _options.InlineProjections, _time);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }
}
