using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Platform.Benchmarks;

/// <summary>
/// The machine saga itself, on machines of the simulated driver (a 0 ms launch): what the control plane adds to a
/// creation and a destruction — five steps across three services and the host agent, each a command and an answer
/// over the broker and a write to PostgreSQL. One at a time for the latencies; then a burst of creations in parallel
/// for the rate the saga sustains on this host.
/// </summary>
internal static class SagaBenchmark
{
    public static async Task RunAsync(string[] args)
    {
        var sequential = args.Length > 0 ? int.Parse(args[0]) : 100;
        var burst = args.Length > 1 ? int.Parse(args[1]) : 200;
        await using var stack = await BenchStack.StartAsync(new Dictionary<string, string>
        {
            // The sandbox driver only lends its template (sandbox-host) to the simulated machines.
            ["Platform__Agent__Drivers__0"] = "sandbox",
            ["Platform__Agent__Drivers__1"] = "simulated",
            ["Platform__Agent__Simulated__LaunchLatencyMs"] = "0",
        });
        using var tenant = await stack.TenantAsync();
        var simulated = new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64 };

        await MachinesBenchmark.MeasureAsync(tenant, "warm-up", 10, simulated, _ => Task.CompletedTask);
        var destroys = new List<double>();
        MachinesBenchmark.Report("saga_create", await MachinesBenchmark.MeasureAsync(tenant, "saga", sequential, simulated, _ => Task.CompletedTask, destroys));
        MachinesBenchmark.Report("saga_destroy", destroys);

        var clock = Stopwatch.StartNew();
        var ids = await Task.WhenAll(Enumerable.Range(0, burst).Select(async _ =>
        {
            var created = await tenant.PostAsJsonAsync("/api/v1/machines", simulated);
            if (created.StatusCode != HttpStatusCode.Accepted)
            {
                throw new InvalidOperationException($"create: {await created.Content.ReadAsStringAsync()}");
            }

            var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
            var running = await tenant.GetAsync($"/api/v1/machines/{id}/wait?state=running&timeout=120s");
            if (running.StatusCode != HttpStatusCode.OK)
            {
                throw new InvalidOperationException($"burst: {await running.Content.ReadAsStringAsync()}");
            }

            return id;
        }));
        Benchmarks.Report("saga_burst_creations_per_s", burst / clock.Elapsed.TotalSeconds);
        await Task.WhenAll(ids.Select(async id =>
        {
            await tenant.DeleteAsync($"/api/v1/machines/{id}");
            await tenant.GetAsync($"/api/v1/machines/{id}/wait?state=destroyed&timeout=120s");
        }));
    }
}
