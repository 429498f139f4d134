namespace Platform.Provisioning.Drivers.Guests;

/// <summary>
/// A process running inside a machine, started by its driver with the machine's own confinement. Its standard streams
/// are the agent's to relay; closing <see cref="StandardInput"/> is the process's end of input. Disposing it kills what
/// is left of it.
/// </summary>
public interface IGuestProcess : IAsyncDisposable
{
    Stream StandardInput { get; }

    Stream StandardOutput { get; }

    Stream StandardError { get; }

    /// <summary>Its exit code once it has ended: 128 + the signal when a signal ended it.</summary>
    Task<int> Exited { get; }

    /// <summary>Sends <paramref name="signal"/> (a Linux signal number) to the process and its process group; nothing once it has ended.</summary>
    void Signal(int signal);

    /// <summary>Resizes its terminal (the process gets SIGWINCH); nothing for a process without one, or once it has ended.</summary>
    void Resize(TerminalSize size);
}

/// <summary>A running machine whose inside the agent can reach: commands run in it as its own processes do.</summary>
public interface IGuestAccess
{
    /// <summary>Starts <paramref name="command"/> (checked: <see cref="GuestCommand.Problem"/> is null) inside the machine; throws <see cref="GuestException"/> when it cannot.</summary>
    Task<IGuestProcess> StartAsync(GuestCommand command, CancellationToken cancellationToken);
}

/// <summary>A command could not start inside a machine; the message says why, for the caller.</summary>
public class GuestException(string message, Exception? inner = null) : Exception(message, inner);
