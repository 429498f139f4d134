using Npgsql;
using Platform.EventSourcing;
using Platform.Hosting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;
using Platform.Tenancy.Directory;

namespace Platform.Tenancy;

/// <summary>Appends on behalf of a caller: the caller becomes the events' actor and a duplicate name a 409.</summary>
public sealed class TenancyEvents(EventStore store, IHttpContextAccessor http)
{
    public async Task AppendAsync(string streamId, IReadOnlyList<object> events, Caller? caller, Guid? tenantId, string duplicate, CancellationToken cancellationToken)
    {
        try
        {
            await store.AppendAsync(streamId, ExpectedVersion.Any, events, new EventMetadata(RequestCorrelation.Of(http.HttpContext), TenantId: tenantId?.ToString(), Actor: caller?.Subject ?? "service:tenancy"), cancellationToken);
        }
        catch (PostgresException exception) when (exception.SqlState == TenancyDirectory.UniqueViolation)
        {
            throw Problems.Conflict(duplicate);
        }
    }
}
