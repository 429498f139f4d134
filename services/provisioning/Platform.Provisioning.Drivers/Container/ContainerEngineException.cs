namespace Platform.Provisioning.Drivers.Container;

/// <summary>
/// The container engine refused a request (<see cref="StatusCode"/> is its HTTP status and the message its own
/// words, from the <c>{"message": …}</c> body it answers errors with), or did not answer at all (no status).
/// </summary>
public sealed class ContainerEngineException(string message, int? statusCode = null, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The engine's HTTP status; null when it did not answer (no socket, connection refused, timed out).</summary>
    public int? StatusCode { get; } = statusCode;

    public bool IsNotFound => StatusCode == 404;
}
