using System.Net;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;
using Platform.Provisioning.Hosts;
using Yarp.ReverseProxy.Forwarder;

namespace Platform.Provisioning.Machines.Guests;

/// <summary>
/// Exec, processes, files and archives of a machine: provisioning decides who may (the caller's tenant owns the machine;
/// a viewer only reads), checks that the machine runs and can be entered, and forwards the request, streamed both ways,
/// to the data plane of the agent that runs it, with a grant for that host, that machine and that access. The bytes go
/// gateway → provisioning → agent → machine, never over the bus.
/// </summary>
public static class GuestForwarding
{
    /// <summary>The drivers whose machines can be entered.</summary>
    private static readonly HashSet<string> EnterableDrivers = ["sandbox", "container", "microvm"];

    private static readonly ForwarderRequestConfig RequestConfig = new() { ActivityTimeout = TimeSpan.FromMinutes(2) };

    private static readonly HttpMessageInvoker Client = new(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseCookies = false,
        ConnectTimeout = TimeSpan.FromSeconds(5),
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
    });

    public static void MapGuests(this IEndpointRouteBuilder app)
    {
        var machine = app.MapGroup("/api/v1/machines/{machineId:guid}");
        Map(machine.MapPost("/exec", Write));
        Map(machine.MapGet("/processes", Read));
        Map(machine.MapGet("/processes/{processId:guid}", Read));
        Map(machine.MapGet("/processes/{processId:guid}/output", Read));
        Map(machine.MapPost("/processes/{processId:guid}/stdin", Write));
        Map(machine.MapPost("/processes/{processId:guid}/signal", Write));
        Map(machine.MapPost("/processes/{processId:guid}/resize", Write));
        // A WebSocket: the forwarder carries the upgrade and then the connection's bytes both ways.
        Map(machine.MapGet("/processes/{processId:guid}/attach", Write));
        Map(machine.MapGet("/files/{**path}", Read));
        Map(machine.MapPut("/files/{**path}", Write));
        Map(machine.MapDelete("/files/{**path}", Write));
        Map(machine.MapGet("/archive/{**path}", Read));
        Map(machine.MapPut("/archive/{**path}", Write));
        Map(machine.MapGet("/logs", ReadLogs));
        Map(machine.MapGet("/console", Write));
    }

    private static void Map(RouteHandlerBuilder route) =>
        route.ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict).ProducesProblem(StatusCodes.Status422UnprocessableEntity);

    private static Task Read(Guid machineId, HttpContext http, Caller caller, MachineReader machines, HostDirectory hosts, MachineGrantSigner signer, IHttpForwarder forwarder) =>
        ForwardAsync(machineId, MachineGrants.Read, http, caller, machines, hosts, signer, forwarder);

    /// <summary>Logs outlive the machine: its host keeps them for a while after it stops, so any machine that ran somewhere may be asked.</summary>
    private static Task ReadLogs(Guid machineId, HttpContext http, Caller caller, MachineReader machines, HostDirectory hosts, MachineGrantSigner signer, IHttpForwarder forwarder) =>
        ForwardAsync(machineId, MachineGrants.Read, http, caller, machines, hosts, signer, forwarder, mustRun: false);

    private static Task Write(Guid machineId, HttpContext http, Caller caller, MachineReader machines, HostDirectory hosts, MachineGrantSigner signer, IHttpForwarder forwarder) =>
        ForwardAsync(machineId, MachineGrants.Write, http, caller, machines, hosts, signer, forwarder);

    private static async Task ForwardAsync(Guid machineId, string access, HttpContext http, Caller caller, MachineReader machines, HostDirectory hosts, MachineGrantSigner signer, IHttpForwarder forwarder, bool mustRun = true)
    {
        var machine = (await machines.FindStateAsync(machineId, caller, http.RequestAborted))?.Machine ?? throw Problems.NotFound("machine");
        if (access == MachineGrants.Write && !Roles.CanMutate(caller.Role))
        {
            throw Problems.Forbidden($"A {caller.Role} reads a machine's processes and files but cannot run commands or change files.");
        }

        if (!EnterableDrivers.Contains(machine.Driver))
        {
            throw new ProblemException(ProblemTypes.ExecUnsupported, StatusCodes.Status409Conflict, "Nothing can run inside this machine through the API.", machine.Driver switch
            {
                "aws" or "gcp" or "azure" => $"A {machine.Driver} machine runs on its cloud, where Platform has no agent: reach it over its network.",
                _ => $"A {machine.Driver} machine offers no way in.",
            });
        }

        if (mustRun ? machine.State != MachineStates.Running : machine.HostId == Guid.Empty)
        {
            throw new ProblemException(ProblemTypes.MachineNotRunning, StatusCodes.Status409Conflict, "The machine is not running.", $"Machine {machine.Name} is {machine.State}: exec, files, archives and logs need it running.");
        }

        if (await hosts.RegistrationAsync(machine.HostId, http.RequestAborted) is not { DataPlaneUrl: { } dataPlane })
        {
            throw new ProblemException(ProblemTypes.ServiceUnavailable, StatusCodes.Status503ServiceUnavailable, "The machine's host offers no way in.", "Its host agent reported no data plane address (Platform:Agent:DataPlaneUrl).");
        }

        // Uploads are as large as the gateway and the agent allow: both check their limits, provisioning passes them on.
        if (http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
        {
            bodySize.MaxRequestBodySize = null;
        }

        // Reaching inside a machine is work: its idleness starts again (MachineExpirySweeper).
        http.RequestServices.GetRequiredService<MachineWork>().NoteAccess(machine.Id, http.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow());
        var grant = signer.Issue(new MachineGrant(machine.Id, machine.TenantId, machine.HostId, caller.Subject, access));
        var error = await forwarder.SendAsync(http, dataPlane, Client, RequestConfig, new WithGrant(grant));
        if (error != ForwarderError.None && !http.Response.HasStarted)
        {
            throw new ProblemException(ProblemTypes.BadGateway, StatusCodes.Status502BadGateway, "The machine's host agent did not answer.",
                $"Its agent at {dataPlane} could not be reached ({error}).");
        }
    }

    /// <summary>The request as it came, with the grant in place of anything of that name.</summary>
    private sealed class WithGrant(string grant) : HttpTransformer
    {
        public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
        {
            await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
            proxyRequest.Headers.Remove(MachineGrants.Header);
            proxyRequest.Headers.Add(MachineGrants.Header, grant);
        }
    }
}
