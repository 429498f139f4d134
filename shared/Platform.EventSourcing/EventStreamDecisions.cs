namespace Platform.EventSourcing;

/// <summary>
/// The one way a service changes a stream: load it, decide on its state, append what was decided with the version read
/// expected; when another append landed in between, decide again on the newer state. The retries on a lost race live here,
/// once, not in each handler.
/// </summary>
public static class EventStreamDecisions
{
    /// <summary>How many times a decision is made before a lost race is left to the caller (a redelivery, a 409).</summary>
    public const int Attempts = 5;

    /// <summary>
    /// Decides on the state of <paramref name="streamId"/> and appends the events decided to it; an empty decision appends
    /// nothing. Returns the events appended.
    /// </summary>
    public static Task<IReadOnlyList<object>> DecideAsync<TState>(
        this IEventStreams streams,
        string streamId,
        Func<TState?, object, TState> evolve,
        Func<TState?, IReadOnlyList<object>> decide,
        EventMetadata metadata,
        CancellationToken cancellationToken = default)
        where TState : class =>
        streams.DecideAsync(streamId, evolve, loaded => decide(loaded.State) is { Count: > 0 } events
            ? [new StreamAppend(streamId, loaded.ExpectedVersion, events)]
            : [], metadata, cancellationToken);

    /// <summary>
    /// Decides on the state of <paramref name="streamId"/> what to append to it and to other streams, all in one transaction
    /// (the decision states the version each append expects). Returns the events appended, in the order decided.
    /// </summary>
    public static async Task<IReadOnlyList<object>> DecideAsync<TState>(
        this IEventStreams streams,
        string streamId,
        Func<TState?, object, TState> evolve,
        Func<Rehydrated<TState>, IReadOnlyList<StreamAppend>> decide,
        EventMetadata metadata,
        CancellationToken cancellationToken = default)
        where TState : class
    {
        for (var attempt = 1; ; attempt++)
        {
            var loaded = await streams.LoadAsync(streamId, evolve, cancellationToken);
            var appends = decide(loaded).Where(a => a.Events.Count > 0).ToArray();
            if (appends.Length == 0)
            {
                return [];
            }

            try
            {
                await streams.AppendAsync(appends, metadata, cancellationToken);
                return appends.SelectMany(a => a.Events).ToArray();
            }
            catch (WrongExpectedVersionException) when (attempt < Attempts)
            {
                // Another append landed in between: decide again on the stream as it is now.
            }
        }
    }
}
