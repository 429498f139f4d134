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
/// Then, with those machines gone, forks of a new 128 MiB micro-VM with a process counting in it into 10 (the second
/// argument: how many forks, 3 by default): <c>fork</c> is the fork's
/// operation, from <c>POST …/fork</c> until it succeeded, divided by its 10 machines; <c>fork_operation</c> the whole of
/// it; <c>fork_host_clone</c> what the host took to start each clone and give it its identity.
/// </summary>
internal static class LifecycleBenchmark
{
    public static async Task RunAsync(string[] args)
    {
        var cycles = args.Length > 0 ? int.Parse(args[0]) : 20;
        var forks = args.Length > 1 ? int.Parse(args[1]) : 3;
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

        // Forks of a micro-VM of their own (with its counter), once the others are gone: what a fork costs, not what sharing the
        // host with a container engine's bookkeeping does.
        foreach (var (_, id) in machines)
        {
            await tenant.DeleteAsync($"/api/v1/machines/{id}");
            await tenant.GetAsync($"/api/v1/machines/{id}/wait?state=destroyed&timeout=60s");
        }

        var parent = await ExecBenchmark.RunningAsync(tenant, new { kind = "microvm", vcpus = 1, memoryMiB = 128 });
        await tenant.PostAsJsonAsync($"/api/v1/machines/{parent}/exec", new { command = counter, background = true });
        var perMachine = new List<double>();
        var operations = new List<double>();
        var clones = new List<double>();
        for (var i = 0; i < forks; i++)
        {
            var (milliseconds, cloneMilliseconds) = await ForkAsync(tenant, parent, ForkCount);
            operations.Add(milliseconds);
            perMachine.Add(milliseconds / ForkCount);
            clones.AddRange(cloneMilliseconds);
        }

        MachinesBenchmark.Report("fork", perMachine);
        MachinesBenchmark.Report("fork_operation", operations);
        MachinesBenchmark.Report("fork_host_clone", clones);
    }

    private const int ForkCount = 10;

    /// <summary>
    /// One fork of the machine into <paramref name="count"/>, from the request until its operation succeeded; then its machines
    /// and its snapshot go. Returns the time and what the host took to start each clone.
    /// </summary>
    private static async Task<(double Milliseconds, IReadOnlyList<double> CloneMilliseconds)> ForkAsync(HttpClient tenant, Guid machine, int count)
    {
        var clock = Stopwatch.StartNew();
        var fork = await tenant.PostAsJsonAsync($"/api/v1/machines/{machine}/fork", new { count });
        if (fork.StatusCode != HttpStatusCode.Accepted)
        {
            throw new InvalidOperationException($"fork: {await fork.Content.ReadAsStringAsync()}");
        }

        JsonElement operation;
        while (true)
        {
            operation = await tenant.GetFromJsonAsync<JsonElement>(fork.Headers.Location);
            if (operation.GetProperty("status").GetString() != "pending")
            {
                break;
            }

            await Task.Delay(5);
        }

        var milliseconds = clock.Elapsed.TotalMilliseconds;
        if (operation.GetProperty("status").GetString() != "succeeded")
        {
            throw new InvalidOperationException($"fork: {operation}");
        }

        var accepted = await fork.Content.ReadFromJsonAsync<JsonElement>();
        var clones = new List<double>();
        foreach (var id in accepted.GetProperty("machineIds").EnumerateArray().Select(e => e.GetGuid()))
        {
            var events = (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/events")).EnumerateArray();
            clones.AddRange(HostFigures(events, "MachineRunning", "launchMilliseconds"));
            await tenant.DeleteAsync($"/api/v1/machines/{id}");
        }

        foreach (var id in accepted.GetProperty("machineIds").EnumerateArray().Select(e => e.GetGuid()))
        {
            await tenant.GetAsync($"/api/v1/machines/{id}/wait?state=destroyed&timeout=60s");
        }

        await tenant.DeleteAsync($"/api/v1/snapshots/{accepted.GetProperty("snapshotId").GetGuid()}");
        return (milliseconds, clones);
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
