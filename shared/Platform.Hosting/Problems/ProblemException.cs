namespace Platform.Hosting.Problems;

/// <summary>A refusal a handler decides on (an illegal transition, a missing resource): answered as a problem with its own type and status.</summary>
public class ProblemException(string type, int status, string title, string? detail = null, IReadOnlyDictionary<string, object?>? extensions = null)
    : Exception(detail ?? title)
{
    public string Type { get; } = type;

    public int Status { get; } = status;

    public string Title { get; } = title;

    public string? Detail { get; } = detail;

    public IReadOnlyDictionary<string, object?> Extensions { get; } = extensions ?? new Dictionary<string, object?>();

    /// <summary>When a refusal is temporary: how long the client should wait before trying again (answered as <c>Retry-After</c>).</summary>
    public TimeSpan? RetryAfter { get; init; }
}
