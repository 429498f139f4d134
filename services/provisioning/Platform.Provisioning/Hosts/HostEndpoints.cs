using Microsoft.AspNetCore.Http.HttpResults;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;

namespace Platform.Provisioning.Hosts;

/// <summary>Hosts (platform-admins only: they are the platform's, not a tenant's) and templates (everyone may choose from them).</summary>
public static class HostEndpoints
{
    public static void MapHosts(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/v1/hosts", async Task<Ok<IReadOnlyList<HostView>>> (Caller caller, HostDirectory hosts, CancellationToken cancellationToken) =>
        {
            if (!caller.SeesAllTenants)
            {
                throw Problems.Forbidden("Hosts are the platform's; only a platform-admin lists them.");
            }

            return TypedResults.Ok(await hosts.HostsAsync(cancellationToken));
        });
        app.MapGet("/api/v1/templates", async Task<Ok<IReadOnlyList<TemplateView>>> (Caller caller, HostDirectory hosts, CancellationToken cancellationToken) =>
            TypedResults.Ok(await hosts.TemplatesAsync(cancellationToken)));
    }
}
