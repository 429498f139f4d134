namespace Platform.EventSourcing;

/// <summary>An append lost a race: the stream is not at the version the writer expected. Nothing was written.</summary>
public sealed class WrongExpectedVersionException(string streamId, ExpectedVersion expected, long actual)
    : Exception($"Stream '{streamId}' is at version {actual}, the append expected {expected}.")
{
    public string StreamId { get; } = streamId;

    public ExpectedVersion Expected { get; } = expected;

    /// <summary>The stream's version when the append was refused (0 when it does not exist).</summary>
    public long ActualVersion { get; } = actual;
}
