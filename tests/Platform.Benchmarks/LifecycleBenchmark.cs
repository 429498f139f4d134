using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Testing;

namespace Platform.Benchmarks;

/// <summary>
/// Pause and resume through the gateway, as a user calls them, one cycle after another on one running machine of each
/// kind: <c>pause</c> is from <c>POST …/pause</c> to the machine answered <c>paused</c> by <c>/wait</c>, <c>resume</c> the
/// same to <c>running</c>; <c>host_…</c> is what the host agent took (the events' <c>pauseMilliseconds</c> and
/// <c>resumeMilliseconds</c>). The micro-VM figures, unprefixed, are for a 128 MiB guest with a process counting in it.
/// </summary>
internal static class LifecycleBenchmark
{
    public static async Task RunAsync(string[] args)
    {
        var cycles = args.Length > 0 ? int.Parse(args[0]) : 20;
        await using var podman = await PodmanService.StartAsync();
        await using var stack = await BenchStack.WithHostDriversAsync(podman);
        using var tenant = await stack.StartGatewayAsync();
        tenant.Timeout = TimeSpan.FromMinutes(5);
        var counter = new[] { "/bin/sh", "-c", "i=0; while :; do i=$((i + 1)); echo $i > /scratch/count; sleep 0.1; done" };
        var machines = new (string Kind, Guid Id)[]
        {
            ("microvm", await ExecBenchmark.RunningAsync(tenant, new { kind = "microvm", vcpus = 1, memoryMiB = 128 })),
            ("sandbox", await ExecBenchmark.RunningAsync(tenant, new { kind = "sandbox", vcpus = 1, memoryMiB = 128, command = counter })),
            ("container", await ExecBenchmark.RunningAsync(tenant, new { kind = "container", template = PodmanService.Image, vcpus = 1, memoryMiB = 128, command = new[] { "sleep", "1000000" } })),
        };
        var started = await tenant.PostAsJsonAsync($"/api/v1/machines/{machines[0].Id}/exec", new { command = counter, background = true });
        if (started.StatusCode != HttpStatusCode.Accepted)
        {
            throw new InvalidOperationException($"counter: {await started.Content.ReadAsStringAsync()}");
        }

        foreach (var (kind, id) in machines)
        {
            var pauses = new List<double>();
            var resumes = new List<double>();
            for (var i = 0; i < cycles; i++)
            {
                pauses.Add(await ActAsync(tenant, id, "pause", "paused"));
                resumes.Add(await ActAsync(tenant, id, "resume", "running"));
            }

            var events = (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/events"))!.EnumerateArray().ToList();
            var prefix = kind == "microvm" ? "" : kind + "_";
            MachinesBenchmark.Report($"{prefix}pause", pauses);
            MachinesBenchmark.Report($"{prefix}resume", resumes);
            MachinesBenchmark.Report($"{prefix}host_pause", HostFigures(events, "MachinePaused", "pauseMilliseconds"));
            MachinesBenchmark.Report($"{prefix}host_resume", HostFigures(events, "MachineResumed", "resumeMilliseconds"));
        }
    }

    /// <summary>One action, from the request to the state it leads to as <c>/wait</c> answers it.</summary>
    private static async Task<double> ActAsync(HttpClient tenant, Guid id, string action, string state)
    {
        var clock = Stopwatch.StartNew();
        var accepted = await tenant.PostAsync($"/api/v1/machines/{id}/{action}", null);
        if (accepted.StatusCode != HttpStatusCode.Accepted)
        {
            throw new InvalidOperationException($"{action}: {await accepted.Content.ReadAsStringAsync()}");
        }

        var reached = await tenant.GetAsync($"/api/v1/machines/{id}/wait?state={state}&timeout=60s");
        if (reached.StatusCode != HttpStatusCode.OK)
        {
            throw new InvalidOperationException($"{action}: {await reached.Content.ReadAsStringAsync()}");
        }

        return clock.Elapsed.TotalMilliseconds;
    }

    private static List<double> HostFigures(IEnumerable<JsonElement> events, string type, string field) =>
        events.Where(e => e.GetProperty("type").GetString() == type).Select(e => e.GetProperty("data").GetProperty(field).GetDouble()).ToList();
}
