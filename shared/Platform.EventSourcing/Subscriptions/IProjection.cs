using Npgsql;

namespace Platform.EventSourcing.Subscriptions;

/// <summary>
/// A read model built from events. Its writes and its checkpoint commit in one transaction, so it sees
/// each event exactly once; <see cref="ResetAsync"/> empties it for a rebuild from position 0.
/// </summary>
public interface IProjection
{
    /// <summary>Stable name; also the checkpoint's name.</summary>
    string Name { get; }

    Task ApplyAsync(IReadOnlyList<StoredEvent> events, NpgsqlTransaction transaction, CancellationToken cancellationToken);

    Task ResetAsync(NpgsqlTransaction transaction, CancellationToken cancellationToken);
}
