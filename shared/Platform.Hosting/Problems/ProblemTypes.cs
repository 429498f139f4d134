namespace Platform.Hosting.Problems;

/// <summary>
/// The stable <c>type</c> of every problem the API answers (RFC 7807). Clients branch on these, never on
/// titles or details; the catalogue is in docs/api/problems.md.
/// </summary>
public static class ProblemTypes
{
    public const string Prefix = "urn:platform:problem:";

    public const string MalformedRequest = Prefix + "malformed-request";
    public const string ValidationFailed = Prefix + "validation-failed";
    public const string Unauthorized = Prefix + "unauthorized";
    public const string Forbidden = Prefix + "forbidden";
    public const string NotFound = Prefix + "not-found";
    public const string MethodNotAllowed = Prefix + "method-not-allowed";
    public const string RequestTimeout = Prefix + "request-timeout";
    public const string Conflict = Prefix + "conflict";
    public const string ConcurrencyConflict = Prefix + "concurrency-conflict";
    public const string PreconditionFailed = Prefix + "precondition-failed";
    public const string IllegalTransition = Prefix + "illegal-transition";
    public const string PlacementRefused = Prefix + "placement-refused";
    public const string MachineFailed = Prefix + "machine-failed";
    public const string SnapshotInUse = Prefix + "snapshot-in-use";
    public const string QuotaExceeded = Prefix + "quota-exceeded";
    public const string PoolExhausted = Prefix + "pool-exhausted";
    public const string SubnetExhausted = Prefix + "subnet-exhausted";
    public const string PayloadTooLarge = Prefix + "payload-too-large";
    public const string LengthRequired = Prefix + "length-required";
    public const string MachineNotRunning = Prefix + "machine-not-running";
    public const string ExecUnsupported = Prefix + "exec-unsupported";
    public const string UnsupportedMediaType = Prefix + "unsupported-media-type";
    public const string RateLimited = Prefix + "rate-limited";
    public const string Overloaded = Prefix + "overloaded";
    public const string InternalError = Prefix + "internal-error";
    public const string BadGateway = Prefix + "bad-gateway";
    public const string ServiceUnavailable = Prefix + "service-unavailable";

    /// <summary>The type a bare status code stands for when nothing more specific was said.</summary>
    public static string ForStatus(int status) => status switch
    {
        400 => MalformedRequest,
        401 => Unauthorized,
        403 => Forbidden,
        404 => NotFound,
        405 => MethodNotAllowed,
        408 => RequestTimeout,
        409 => Conflict,
        411 => LengthRequired,
        412 => PreconditionFailed,
        413 => PayloadTooLarge,
        415 => UnsupportedMediaType,
        422 => ValidationFailed,
        429 => RateLimited,
        502 => BadGateway,
        503 or 504 => ServiceUnavailable,
        _ => status >= 500 ? InternalError : MalformedRequest,
    };
}
