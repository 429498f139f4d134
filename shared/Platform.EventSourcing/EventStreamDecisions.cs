namespace Platform.EventSourcing;

/// <summary>
/// The one way a service changes a stream: load it, decide on its state, append what was decided with the version read
/// expected; when another append landed in between, decide again on the newer state. The retries on a lost race live here,
/// once, not in each handler. A decision that throws (a refusal) appends nothing and reaches the caller as it is.
/// </summary>
public static class EventStreamDecisions
{
    /// <summary>
    /// How many times a decision is made before a lost race is left to the caller (a redelivery, a 409): enough for a hot
    /// stream (an exit node's tunnel addresses, taken by a burst of machines at once).
    /// </summary>
    public const int Attempts = 20;

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
    public static Task<IReadOnlyList<object>> DecideAsync<TState>(
        this IEventStreams streams,
        string streamId,
        Func<TState?, object, TState> evolve,
        Func<Rehydrated<TState>, IReadOnlyList<StreamAppend>> decide,
        EventMetadata metadata,
        CancellationToken cancellationToken = default)
        where TState : class =>
        streams.DecideAsync(streamId, evolve, loaded => new Decision(decide(loaded), metadata), cancellationToken);

    /// <summary>
    /// Decides on the state of <paramref name="streamId"/> (with its version, for a caller's <c>If-Match</c>) what to append
    /// where and with which metadata (a tenant read from the state), and appends it.
    /// </summary>
    public static Task<IReadOnlyList<object>> DecideAsync<TState>(
        this IEventStreams streams,
        string streamId,
        Func<TState?, object, TState> evolve,
        Func<Rehydrated<TState>, Decision> decide,
        CancellationToken cancellationToken = default)
        where TState : class =>
        streams.DecideAsync(token => streams.LoadAsync(streamId, evolve, token), decide, cancellationToken);

    /// <summary>
    /// The primitive itself: loads what the decision rests on (several streams, each with the version its appends will
    /// expect), decides, appends; on a lost race it loads and decides again.
    /// </summary>
    public static async Task<IReadOnlyList<object>> DecideAsync<TLoaded>(
        this IEventStreams streams,
        Func<CancellationToken, Task<TLoaded>> load,
        Func<TLoaded, Decision> decide,
        CancellationToken cancellationToken = default)
    {
        for (var attempt = 1; ; attempt++)
        {
            var decision = decide(await load(cancellationToken));
            var appends = decision.Appends.Where(a => a.Events.Count > 0).ToArray();
            if (appends.Length == 0)
            {
                return [];
            }

            try
            {
                await streams.AppendAsync(appends, decision.Metadata, cancellationToken);
                return appends.SelectMany(a => a.Events).ToArray();
            }
            catch (WrongExpectedVersionException) when (attempt < Attempts)
            {
                // Another append landed in between: decide again on the streams as they are now.
            }
        }
    }
}

/// <summary>What a decision appends, where, and who and what caused it.</summary>
public sealed record Decision(IReadOnlyList<StreamAppend> Appends, EventMetadata Metadata)
{
    public static Decision Nothing { get; } = new([], EventMetadata.None);
}
