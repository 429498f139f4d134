using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Platform.Benchmarks;

/// <summary>
/// The machine saga itself, on machines of the simulated driver (a 0 ms launch): what the control plane adds to a
/// creation and a destruction — five steps across three services and the host agent, each a command and an answer
/// over the broker and a write to PostgreSQL. One at a time for the latencies; then a burst of creations in parallel
/// (32 clients) for the rate the saga sustains on this host.
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

        // A tenant of its own: the first one's addresses rest in quarantine (a /24 holds 253).
        using var burstTenant = await stack.TenantAsync();
        // 32 clients at once: 200 simultaneous creates exhaust provisioning's connection pool (a 500 after 15 s; see docs/benchmarks.md).
        var clock = Stopwatch.StartNew();
        var ids = new System.Collections.Concurrent.ConcurrentBag<Guid>();
        await Parallel.ForEachAsync(Enumerable.Range(0, burst), new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (_, _) =>
        {
            var created = await burstTenant.PostAsJsonAsync("/api/v1/machines", simulated);
            if (created.StatusCode != HttpStatusCode.Accepted)
            {
                throw new InvalidOperationException($"create: {await created.Content.ReadAsStringAsync()}\n{string.Join("\n", stack.Errors.Take(3))}");
            }

            var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
            var running = await burstTenant.GetAsync($"/api/v1/machines/{id}/wait?state=running&timeout=60s");
            if (running.StatusCode != HttpStatusCode.OK)
            {
                throw new InvalidOperationException($"burst: {await running.Content.ReadAsStringAsync()}");
            }

            ids.Add(id);
        });
        Benchmarks.Report("saga_burst_creations_per_s", burst / clock.Elapsed.TotalSeconds);
        await Task.WhenAll(ids.Select(async id =>
        {
            await burstTenant.DeleteAsync($"/api/v1/machines/{id}");
            await burstTenant.GetAsync($"/api/v1/machines/{id}/wait?state=destroyed&timeout=60s");
        }));
    }
}
