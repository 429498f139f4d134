using System.Collections.Immutable;
using Platform.Contracts.Provisioning;

namespace Platform.Provisioning.Snapshots;

public static class SnapshotStates
{
    /// <summary>Its quota is being reserved and its host saves the machine.</summary>
    public const string Creating = "creating";
    public const string Ready = "ready";
    public const string Failed = "failed";
    public const string Deleting = "deleting";
    public const string Deleted = "deleted";

    public static IReadOnlyList<string> All { get; } = [Creating, Ready, Failed, Deleting, Deleted];
}

/// <summary>
/// A snapshot of a machine, folded from its stream <c>snapshot-{id}</c>: what the machine was made as, where it is kept
/// (the machine's host), and, for a fork, the machines to make from it. Reports from its host and from the quota count
/// only while they still mean something; a user's delete is decided by <see cref="Delete"/>.
/// </summary>
public sealed record Snapshot(
    Guid Id,
    Guid TenantId,
    string Name,
    Guid MachineId,
    string MachineName,
    Guid HostId,
    string Kind,
    string Driver,
    TemplateRef Template,
    MachineShape Shape,
    IReadOnlyList<string>? Command,
    ImmutableSortedDictionary<string, string> Labels,
    SnapshotFork? Fork,
    string State,
    string? Contents,
    long? SizeBytes,
    string? Error,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt)
{
    /// <summary>The machines of its fork that could not be made, and why.</summary>
    public ImmutableDictionary<Guid, string> RefusedForks { get; init; } = ImmutableDictionary<Guid, string>.Empty;

    public static string StreamOf(Guid snapshotId) => $"snapshot-{snapshotId}";

    public static Snapshot Create(SnapshotRequested e) => new(
        e.SnapshotId, e.TenantId, e.Name, e.MachineId, e.MachineName, e.HostId, e.Kind, e.Driver, e.Template, e.Shape, e.Command,
        e.Labels.ToImmutableSortedDictionary(), e.Fork, SnapshotStates.Creating, null, null, null, e.RequestedAt, e.RequestedAt);

    public static Snapshot Evolve(Snapshot? snapshot, object @event) =>
        snapshot is null ? Create((SnapshotRequested)@event) : snapshot.Apply(@event);

    public Snapshot Apply(object @event) => @event switch
    {
        SnapshotReady e => this with { State = SnapshotStates.Ready, Contents = e.Contents, SizeBytes = e.SizeBytes, UpdatedAt = e.ReadyAt },
        SnapshotFailed e => this with { State = SnapshotStates.Failed, Error = e.Reason, UpdatedAt = e.FailedAt },
        ForkMachineRefused e => this with { RefusedForks = RefusedForks.SetItem(e.MachineId, e.Reason), UpdatedAt = e.RefusedAt },
        SnapshotDeleteRequested e => this with { State = SnapshotStates.Deleting, UpdatedAt = e.RequestedAt },
        SnapshotDeleted e => this with { State = SnapshotStates.Deleted, UpdatedAt = e.DeletedAt },
        _ => this,
    };

    /// <summary>What the host's report that it saved the snapshot records: ready, once, while it is being made.</summary>
    public IReadOnlyList<object> Decide(SnapshotSaved saved, DateTimeOffset now) => State == SnapshotStates.Creating
        ? [new SnapshotReady(Id, TenantId, saved.Contents, saved.SizeBytes, saved.Milliseconds, now)]
        : [];

    /// <summary>What a refusal (of its quota, or its host's) records: failed, once, while it is being made.</summary>
    public IReadOnlyList<object> Fail(string reason, DateTimeOffset now) => State == SnapshotStates.Creating
        ? [new SnapshotFailed(Id, TenantId, reason, now)]
        : [];

    /// <summary>
    /// What it records once it has been <c>creating</c> for <paramref name="limit"/> (its host never answered: it is down, or
    /// gone): failed, saying so, so that its quota goes back and it can be deleted. A save that comes after is removed.
    /// </summary>
    public IReadOnlyList<object> Overdue(DateTimeOffset now, TimeSpan limit) => State == SnapshotStates.Creating && now - CreatedAt >= limit
        ? [new SnapshotFailed(Id, TenantId, $"its host did not save it within {(limit.TotalMinutes >= 1 ? $"{limit.TotalMinutes:0.#} minutes" : $"{limit.TotalSeconds:0} seconds")}", now)]
        : [];

    /// <summary>
    /// A user's delete: a snapshot being made cannot be deleted yet; a failed one holds nothing and is deleted at once; a
    /// ready one is removed from its host first.
    /// </summary>
    public object Delete(DateTimeOffset now) => State switch
    {
        SnapshotStates.Ready => new SnapshotDeleteRequested(Id, TenantId, now),
        SnapshotStates.Failed => new SnapshotDeleted(Id, TenantId, now),
        _ => throw new SnapshotStateException($"A snapshot that is {State} cannot be deleted" + (State == SnapshotStates.Creating ? " until it is ready or failed." : ".")),
    };

    /// <summary>What its host's report that it removed the snapshot records: deleted, once, while a delete was asked for.</summary>
    public IReadOnlyList<object> Decide(SnapshotRemoved removed, DateTimeOffset now) => State == SnapshotStates.Deleting
        ? [new SnapshotDeleted(Id, TenantId, now)]
        : [];
}

/// <summary>A request the snapshot's state does not allow.</summary>
public sealed class SnapshotStateException(string message) : Exception(message);
