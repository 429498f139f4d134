namespace Platform.EventSourcing;

/// <summary>Where an append landed: the stream's new version and the global position of its last event.</summary>
public sealed record AppendResult(string StreamId, long NextExpectedVersion, long LastPosition);
