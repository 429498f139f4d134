namespace Platform.Provisioning.Drivers.Guests;

/// <summary>
/// A piece of what a machine's main process wrote: <c>stdout</c>, <c>stderr</c> or <c>console</c>, its bytes, and the
/// time they were written by (null when it is not known, or is now).
/// </summary>
public sealed record LogChunk(string Stream, ReadOnlyMemory<byte> Data, DateTimeOffset? WrittenBy = null);

/// <summary>
/// Which logs to read: what was written after <see cref="Since"/> (all that is kept when null), of that the last
/// <see cref="TailLines"/> lines per stream (all when null), then, when <see cref="Follow"/>, what is written next.
/// </summary>
public sealed record LogQuery(int? TailLines = null, bool Follow = false, DateTimeOffset? Since = null);

/// <summary>A running machine whose main process's output the agent can read: its last lines, then, when following, what it writes next.</summary>
public interface IMachineLogs
{
    IAsyncEnumerable<LogChunk> ReadLogsAsync(LogQuery query, CancellationToken cancellationToken);
}

/// <summary>A running machine with a serial console: a byte stream both ways, what it prints and what is typed into it.</summary>
public interface IMachineConsole
{
    /// <summary>Connects to the console; throws <see cref="GuestException"/> when someone else is connected already.</summary>
    Task<Stream> OpenConsoleAsync(CancellationToken cancellationToken);
}
