using Microsoft.AspNetCore.Http;

namespace Platform.Hosting.Problems;

/// <summary>The refusals endpoints throw, one factory each, so every service words them the same way.</summary>
public static class Problems
{
    public static ProblemException NotFound(string what) =>
        new(ProblemTypes.NotFound, StatusCodes.Status404NotFound, "Not Found", $"No {what} with that id is visible to you.");

    public static ProblemException Forbidden(string detail) =>
        new(ProblemTypes.Forbidden, StatusCodes.Status403Forbidden, "Forbidden", detail);

    public static ProblemException Conflict(string detail) =>
        new(ProblemTypes.Conflict, StatusCodes.Status409Conflict, "Conflict", detail);

    public static ProblemException Unauthorized(string detail) =>
        new(ProblemTypes.Unauthorized, StatusCodes.Status401Unauthorized, "Unauthorized", detail);

    /// <summary>
    /// More requests of this kind are waiting than the service takes on: refused before anything was written, to be sent
    /// again after <paramref name="retryAfter"/> (at least a second, whole seconds).
    /// </summary>
    public static ProblemException Overloaded(string detail, TimeSpan retryAfter) =>
        new(ProblemTypes.Overloaded, StatusCodes.Status429TooManyRequests, "Too many requests of this kind are waiting; nothing was done.", detail)
        {
            RetryAfter = TimeSpan.FromSeconds(Math.Max(1, Math.Ceiling(retryAfter.TotalSeconds))),
        };

    /// <summary>One field with an unacceptable value: <see cref="Validation"/> for a single field.</summary>
    public static ProblemException Invalid(string field, string message) =>
        Validation(new Dictionary<string, string[]> { [field] = [message] });

    /// <summary>A well-formed request with unacceptable values: <c>errors</c> maps each field (camelCase) to its messages.</summary>
    public static ProblemException Validation(IReadOnlyDictionary<string, string[]> errors) =>
        new(ProblemTypes.ValidationFailed, StatusCodes.Status422UnprocessableEntity, "The request has invalid values.",
            string.Join(" ", errors.SelectMany(e => e.Value.Select(m => $"{e.Key}: {m}"))),
            new Dictionary<string, object?> { ["errors"] = errors });
}
