using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Contracts.Tenancy;
using Platform.Hosting.Security;
using Platform.Testing;

namespace Platform.Benchmarks;

/// <summary>
/// The audit log end to end on the bench instance: a real telemetry process ingesting events from the
/// broker (published with confirms, 64 in flight), then a client replaying the whole log through the
/// audit API in pages of 1,000.
/// </summary>
internal static class AuditBenchmark
{
    private const int Events = 20_000;

    public static async Task RunAsync(string[] args)
    {
        await using var database = await PostgresDatabase.CreateAsync();
        await using var virtualHost = await RabbitVirtualHost.CreateAsync();
        await using var telemetry = ServiceProcess.Start("telemetry", new Dictionary<string, string>
        {
            ["ConnectionStrings__Postgres"] = database.ConnectionString,
            ["ConnectionStrings__RabbitMq"] = virtualHost.ConnectionString,
        });
        await telemetry.WaitUntilReadyAsync();
        await using var bus = await TestBus.StartAsync(virtualHost, "audit-bench", _ => { }, _ => { });
        var tenant = Guid.CreateVersion7();

        var clock = Stopwatch.StartNew();
        await Parallel.ForEachAsync(Enumerable.Range(0, Events), new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (i, cancellationToken) =>
            await bus.Bus.Publish(new MachineRegistered(Guid.CreateVersion7(), tenant, $"m-{i}", "sandbox", "user:bench", DateTimeOffset.UtcNow), cancellationToken));
        var published = clock.Elapsed;
        while (await database.ScalarAsync<long>("SELECT count(*) FROM telemetry.audit_events") < Events)
        {
            await Task.Delay(20);
        }

        Benchmarks.Report("audit_publish_events_per_s", Events / published.TotalSeconds);
        Benchmarks.Report("audit_ingest_events_per_s", Events / clock.Elapsed.TotalSeconds);

        using var client = await telemetry.CreateGatewayLikeClientAsync();
        client.DefaultRequestHeaders.Add(IdentityHeaders.Subject, "user:bench");
        client.DefaultRequestHeaders.Add(IdentityHeaders.Role, Roles.PlatformAdmin);
        clock.Restart();
        var replayed = 0;
        string? cursor = "0";
        while (cursor is not null)
        {
            var page = await client.GetFromJsonAsync<JsonElement>($"/api/v1/audit?limit=1000&after={cursor}");
            replayed += page.GetProperty("items").GetArrayLength();
            cursor = page.TryGetProperty("nextCursor", out var next) ? next.GetString() : null;
        }

        Benchmarks.Report("audit_replay_events_per_s", replayed / clock.Elapsed.TotalSeconds);
    }
}
