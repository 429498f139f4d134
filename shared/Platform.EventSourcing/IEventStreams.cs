namespace Platform.EventSourcing;

/// <summary>
/// What a handler needs of its service's event store to decide: a stream folded into its state, and appends that expect
/// the version it read. <see cref="EventStore"/> keeps them in PostgreSQL; decisions are made through
/// <see cref="EventStreamDecisions.DecideAsync{TState}(IEventStreams, string, Func{TState, object, TState}, Func{TState, IReadOnlyList{object}}, EventMetadata, CancellationToken)"/>.
/// </summary>
public interface IEventStreams
{
    /// <summary>Folds a stream into an aggregate's state with <paramref name="evolve"/>; a missing stream gives a null state at version 0.</summary>
    Task<Rehydrated<TState>> LoadAsync<TState>(string streamId, Func<TState?, object, TState> evolve, CancellationToken cancellationToken = default)
        where TState : class;

    /// <summary>
    /// Appends to every stream named, in one transaction: all of them or none. Throws <see cref="WrongExpectedVersionException"/>
    /// when a stream is not at the version expected.
    /// </summary>
    Task<IReadOnlyList<AppendResult>> AppendAsync(IReadOnlyList<StreamAppend> appends, EventMetadata metadata, CancellationToken cancellationToken = default);
}

/// <summary>Events for one stream, appended only if the stream is at <paramref name="Expected"/>.</summary>
public sealed record StreamAppend(string StreamId, ExpectedVersion Expected, IReadOnlyList<object> Events);
