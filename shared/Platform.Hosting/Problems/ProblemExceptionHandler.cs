using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;

namespace Platform.Hosting.Problems;

/// <summary>Turns every exception that escapes an endpoint into a problem: a client's mistake is a 4xx with a stable type, never a 500.</summary>
internal sealed class ProblemExceptionHandler(IProblemDetailsService problems, IEnumerable<ExceptionProblem> mappings, ILogger<ProblemExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        // A library's exception that a host part knows the meaning of is answered as that refusal.
        var refusal = mappings.Select(map => map(exception)).FirstOrDefault(mapped => mapped is not null) ?? exception;
        var problem = refusal switch
        {
            ProblemException known => Problem(known.Status, known.Type, known.Title, known.Detail, known.Extensions),
            BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } => Problem(413, ProblemTypes.PayloadTooLarge, "The request body is too large.", exception.Message),
            BadHttpRequestException { StatusCode: StatusCodes.Status415UnsupportedMediaType } => Problem(415, ProblemTypes.UnsupportedMediaType, "The request body must be JSON.", exception.Message),
            BadHttpRequestException bad => Problem(bad.StatusCode, ProblemTypes.ForStatus(bad.StatusCode), "The request could not be read.", bad.Message),
            Security.UnauthenticatedException => Problem(401, ProblemTypes.Unauthorized, "Authentication is required.", "Send a bearer token or an API key."),
            OperationCanceledException when httpContext.RequestAborted.IsCancellationRequested => null,
            _ => Problem(500, ProblemTypes.InternalError, "An unexpected error occurred.", "The error was logged; quote the traceId when reporting it."),
        };
        if (problem is null)
        {
            return true;
        }

        if (problem.Status >= 500)
        {
            logger.LogError(exception, "Unhandled error on {Method} {Path}", httpContext.Request.Method, httpContext.Request.Path);
        }

        httpContext.Response.StatusCode = problem.Status!.Value;
        if (problem.Status == StatusCodes.Status401Unauthorized)
        {
            httpContext.Response.Headers.WWWAuthenticate = "Bearer";
        }

        if (refusal is ProblemException { RetryAfter: { } retryAfter })
        {
            httpContext.Response.Headers.RetryAfter = ((long)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return await problems.TryWriteAsync(new ProblemDetailsContext { HttpContext = httpContext, ProblemDetails = problem, Exception = exception });
    }

    private static ProblemDetails Problem(int status, string type, string title, string? detail, IReadOnlyDictionary<string, object?>? extensions = null)
    {
        var problem = new ProblemDetails { Status = status, Type = type, Title = title, Detail = detail };
        foreach (var (key, value) in extensions ?? new Dictionary<string, object?>())
        {
            problem.Extensions[key] = value;
        }

        return problem;
    }
}
