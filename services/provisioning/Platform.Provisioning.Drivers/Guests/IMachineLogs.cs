namespace Platform.Provisioning.Drivers.Guests;

/// <summary>A piece of what a machine's main process wrote: <c>stdout</c> or <c>stderr</c>, and its bytes.</summary>
public sealed record LogChunk(string Stream, ReadOnlyMemory<byte> Data);

/// <summary>A running machine whose main process's output the agent can read: its last lines, then, when following, what it writes next.</summary>
public interface IMachineLogs
{
    IAsyncEnumerable<LogChunk> ReadLogsAsync(int? tailLines, bool follow, CancellationToken cancellationToken);
}

/// <summary>A running machine with a serial console: a byte stream both ways, what it prints and what is typed into it.</summary>
public interface IMachineConsole
{
    /// <summary>Connects to the console; throws <see cref="GuestException"/> when someone else is connected already.</summary>
    Task<Stream> OpenConsoleAsync(CancellationToken cancellationToken);
}
