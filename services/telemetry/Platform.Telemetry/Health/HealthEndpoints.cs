using Microsoft.AspNetCore.Http.HttpResults;
using Platform.Contracts.Telemetry;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;
using Platform.Telemetry.Machines;

namespace Platform.Telemetry.Health;

/// <summary><c>GET /api/v1/machines/{id}/health</c>: the machine's health state and each check's last result (its tenant, or a platform-admin).</summary>
public static class HealthEndpoints
{
    public static void MapHealth(this IEndpointRouteBuilder app) =>
        app.MapGet("/api/v1/machines/{machineId:guid}/health", async Task<Ok<MachineHealth>> (Guid machineId, Caller caller, MachineLedger ledger, HealthStore health, CancellationToken cancellationToken) =>
        {
            if (await ledger.FindAsync(machineId, cancellationToken) is not { } machine || !(caller.SeesAllTenants || machine.TenantId == caller.TenantId))
            {
                throw Problems.NotFound("machine");
            }

            return TypedResults.Ok(await health.FindAsync(machineId, cancellationToken) ?? new MachineHealth(machineId, HealthStates.Unknown, null, machine.StateSince, []));
        });
}
