using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Testing;

namespace Platform.Benchmarks;

/// <summary>
/// Exec and files through the gateway, as a user calls them: the gateway, provisioning (which decides and forwards with
/// a grant), the host agent and the machine, on the bench instance. <c>exec_roundtrip</c> is <c>POST …/exec</c> of
/// <c>true</c>, answered, one after another; the file figures are one upload and one download of the given size.
/// Sandboxes, containers (on a podman service of the benchmark's own) and micro-VMs (through their guest agent).
/// </summary>
internal static class ExecBenchmark
{
    public static async Task RunAsync(string[] args)
    {
        var count = args.Length > 0 ? int.Parse(args[0]) : 200;
        var fileMiB = args.Length > 1 ? int.Parse(args[1]) : 100;
        await using var podman = await PodmanService.StartAsync();
        await using var stack = await BenchStack.WithHostDriversAsync(podman);
        using var tenant = await stack.StartGatewayAsync();
        tenant.Timeout = TimeSpan.FromMinutes(5);
        var machines = new (string Kind, Guid Id)[]
        {
            ("sandbox", await RunningAsync(tenant, new { kind = "sandbox", vcpus = 1, memoryMiB = 2 * fileMiB + 256 })),
            ("container", await RunningAsync(tenant, new { kind = "container", template = PodmanService.Image, vcpus = 1, memoryMiB = 256, command = new[] { "sleep", "1000000" } })),
            // Its files live in its memory (the initramfs): room for one and its copy.
            ("microvm", await RunningAsync(tenant, new { kind = "microvm", vcpus = 1, memoryMiB = 2 * fileMiB + 256 })),
        };

        foreach (var (kind, id) in machines)
        {
            await RoundTripsAsync(tenant, id, 10);
            MachinesBenchmark.Report($"exec_roundtrip_{kind}", await RoundTripsAsync(tenant, id, count));
            // Each round trip leaves a record to append and relay: the next kind starts once the stack has caught up.
            await Task.Delay(TimeSpan.FromSeconds(5));
        }

        var content = new byte[fileMiB * 1024 * 1024];
        Random.Shared.NextBytes(content);
        foreach (var (kind, id) in machines)
        {
            var path = kind == "container" ? "bench.bin" : "scratch/bench.bin";
            var clock = Stopwatch.StartNew();
            var put = await tenant.PutAsync($"/api/v1/machines/{id}/files/{path}", new ByteArrayContent(content));
            var upload = clock.Elapsed.TotalSeconds;
            if (put.StatusCode != HttpStatusCode.Created)
            {
                throw new InvalidOperationException($"upload: {await put.Content.ReadAsStringAsync()}");
            }

            clock.Restart();
            await using (var download = await tenant.GetStreamAsync($"/api/v1/machines/{id}/files/{path}"))
            {
                var read = 0L;
                var buffer = new byte[256 * 1024];
                int n;
                while ((n = await download.ReadAsync(buffer)) > 0)
                {
                    read += n;
                }

                if (read != content.Length)
                {
                    throw new InvalidOperationException($"download: {read} bytes of {content.Length}");
                }
            }

            var prefix = kind == "sandbox" ? "" : $"{kind}_";
            Benchmarks.Report($"{prefix}file_upload_mib_per_s", fileMiB / upload);
            Benchmarks.Report($"{prefix}file_download_mib_per_s", fileMiB / clock.Elapsed.TotalSeconds);
        }

        foreach (var (_, id) in machines)
        {
            await tenant.DeleteAsync($"/api/v1/machines/{id}");
            await tenant.GetAsync($"/api/v1/machines/{id}/wait?state=destroyed&timeout=60s");
        }
    }

    internal static async Task<Guid> RunningAsync(HttpClient tenant, object body)
    {
        var created = await tenant.PostAsJsonAsync("/api/v1/machines", body);
        if (created.StatusCode != HttpStatusCode.Accepted)
        {
            throw new InvalidOperationException($"create: {await created.Content.ReadAsStringAsync()}");
        }

        var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        var running = await tenant.GetAsync($"/api/v1/machines/{id}/wait?state=running&timeout=60s");
        if (running.StatusCode != HttpStatusCode.OK)
        {
            throw new InvalidOperationException($"machine: {await running.Content.ReadAsStringAsync()}");
        }

        return id;
    }

    private static async Task<IReadOnlyList<double>> RoundTripsAsync(HttpClient tenant, Guid id, int count)
    {
        var timings = new List<double>(count);
        for (var i = 0; i < count; i++)
        {
            var clock = Stopwatch.StartNew();
            var response = await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/exec", new { command = new[] { "true" } });
            var answer = await response.Content.ReadFromJsonAsync<JsonElement>();
            timings.Add(clock.Elapsed.TotalMilliseconds);
            if (response.StatusCode != HttpStatusCode.OK || answer.GetProperty("exitCode").GetInt32() != 0)
            {
                throw new InvalidOperationException($"exec: {answer}");
            }
        }

        return timings;
    }
}
