using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Platform.Benchmarks;

/// <summary>
/// The machine saga itself, on machines of the simulated driver (a 0 ms launch): what the control plane adds to a
/// creation and a destruction — five steps across three services and the host agent, each a command and an answer
/// over the broker and a write to PostgreSQL. One at a time for the latencies; then a burst of creations in parallel
/// (32 clients) for the rate the saga sustains on this host; then a spike: creations, and then destructions, sent all
/// at the same instant, and what each was answered.
/// </summary>
internal static class SagaBenchmark
{
    public static async Task RunAsync(string[] args)
    {
        var sequential = args.Length > 0 ? int.Parse(args[0]) : 100;
        var burst = args.Length > 1 ? int.Parse(args[1]) : 200;
        var spike = args.Length > 2 ? int.Parse(args[2]) : 200;
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
        // 32 clients at once: the rate the saga sustains when its clients wait for each machine before asking for the next.
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
        await DestroyAsync(burstTenant, ids);

        using var spikeTenant = await stack.TenantAsync();
        await SpikeAsync(stack, spikeTenant, spike, simulated);
    }

    /// <summary>
    /// <paramref name="count"/> creations sent at the same instant, with no client-side limit: what a control plane must
    /// survive without a 5xx. Every accepted machine must come to running, and every refused one must have left nothing.
    /// </summary>
    private static async Task SpikeAsync(BenchStack stack, HttpClient tenant, int count, object body)
    {
        var name = $"saga_burst{count}";
        var answers = new List<double>();
        var accepted = new System.Collections.Concurrent.ConcurrentBag<Guid>();
        var statuses = new System.Collections.Concurrent.ConcurrentBag<int>();
        var waits = new System.Collections.Concurrent.ConcurrentBag<int>();
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        var running = 0;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
        {
            var sent = clock.Elapsed;
            using var created = await tenant.PostAsJsonAsync("/api/v1/machines", body);
            lock (answers)
            {
                answers.Add((clock.Elapsed - sent).TotalMilliseconds);
            }

            statuses.Add((int)created.StatusCode);
            if (created.StatusCode == HttpStatusCode.TooManyRequests)
            {
                return;
            }

            if (created.StatusCode != HttpStatusCode.Accepted)
            {
                failures.Add($"{(int)created.StatusCode} {await created.Content.ReadAsStringAsync()}");
                return;
            }

            var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
            accepted.Add(id);
            using var ready = await tenant.GetAsync($"/api/v1/machines/{id}/wait?state=running&timeout=60s");
            waits.Add((int)ready.StatusCode);
            if (ready.StatusCode == HttpStatusCode.OK)
            {
                Interlocked.Increment(ref running);
            }
            else
            {
                failures.Add($"{(int)ready.StatusCode} {await ready.Content.ReadAsStringAsync()}");
            }
        }));
        var elapsed = clock.Elapsed;
        var listed = await CountMachinesAsync(tenant);
        Benchmarks.Report($"{name}_status_2xx", statuses.Count(s => s is >= 200 and < 300));
        Benchmarks.Report($"{name}_status_4xx", statuses.Count(s => s is >= 400 and < 500));
        Benchmarks.Report($"{name}_status_5xx", statuses.Count(s => s >= 500));
        // Of the 4xx: refused because the line for placement was full (429 overloaded, with Retry-After).
        Benchmarks.Report($"{name}_status_429", statuses.Count(s => s == 429));
        MachinesBenchmark.Report($"{name}_answer", answers);
        Benchmarks.Report($"{name}_running", running);
        // A machine the tenant holds that no 2xx answered for: what a refused or failed request left behind.
        Benchmarks.Report($"{name}_unanswered_machines", listed - accepted.Count);
        Benchmarks.Report($"{name}_creations_per_s", running / elapsed.TotalSeconds);

        // The same machines destroyed at the same instant: a burst of another mutation.
        var destroyed = await DestroyAsync(tenant, accepted);
        Benchmarks.Report($"{name}_destroy_status_2xx", destroyed.Count(s => s.Delete is >= 200 and < 300));
        Benchmarks.Report($"{name}_destroy_status_4xx", destroyed.Count(s => s.Delete is >= 400 and < 500));
        Benchmarks.Report($"{name}_destroy_status_5xx", destroyed.Count(s => s.Delete >= 500));
        // The /wait calls of both bursts (for running, then for destroyed): reads that need a connection too.
        Benchmarks.Report($"{name}_wait_status_5xx", waits.Concat(destroyed.Select(s => s.Wait)).Count(s => s >= 500));
        foreach (var failure in failures.GroupBy(f => f[..Math.Min(f.Length, 200)]).Take(5))
        {
            Console.Error.WriteLine($"{name}: {failure.Count()} × {failure.Key}");
        }

        foreach (var error in stack.Errors.GroupBy(e => e[..Math.Min(e.Length, 400)]).Take(5))
        {
            Console.Error.WriteLine($"{name}: {error.Count()} × {error.Key}");
        }
    }

    private static async Task<int> CountMachinesAsync(HttpClient tenant)
    {
        var total = 0;
        string? cursor = null;
        do
        {
            var page = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines?limit=500{(cursor is null ? "" : $"&cursor={cursor}")}");
            total += page.GetProperty("items").GetArrayLength();
            cursor = page.TryGetProperty("nextCursor", out var next) && next.ValueKind == JsonValueKind.String ? next.GetString() : null;
        }
        while (cursor is not null);
        return total;
    }

    /// <summary>Destroys every machine at once and waits until each is destroyed; returns the status of each DELETE and of its wait.</summary>
    private static async Task<(int Delete, int Wait)[]> DestroyAsync(HttpClient tenant, IEnumerable<Guid> ids) =>
        await Task.WhenAll(ids.Select(async id =>
        {
            using var deleted = await tenant.DeleteAsync($"/api/v1/machines/{id}");
            using var gone = await tenant.GetAsync($"/api/v1/machines/{id}/wait?state=destroyed&timeout=60s");
            return ((int)deleted.StatusCode, (int)gone.StatusCode);
        }));
}
