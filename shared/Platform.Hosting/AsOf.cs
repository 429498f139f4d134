using System.Globalization;
using static Platform.Hosting.Problems.Problems;

namespace Platform.Hosting;

/// <summary>
/// A read of a resource as it stood: at a version of its stream (<c>?version=</c>) or at a time (<c>?at=</c>), whichever
/// comes first, folded from its events. Only the present has an ETag: <c>If-Match</c> acts on it alone.
/// </summary>
public sealed record AsOf(long? Version, DateTimeOffset? At)
{
    /// <summary>Null when the request asks for the present; a validation problem naming the field when either is not valid.</summary>
    public static AsOf? Read(long? version, string? at, string resource)
    {
        if (version is null && at is null)
        {
            return null;
        }

        if (version is < 1)
        {
            throw Invalid("version", $"must be a version of the {resource}'s stream, 1 or more");
        }

        DateTimeOffset? asOf = null;
        if (at is not null)
        {
            asOf = DateTimeOffset.TryParse(at, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed)
                ? parsed
                : throw Invalid("at", "must be an ISO 8601 time, such as 2026-12-03T12:00:00Z");
        }

        return new AsOf(version, asOf);
    }
}
