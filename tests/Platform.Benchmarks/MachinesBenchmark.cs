using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Platform.Benchmarks;

/// <summary>
/// Create→running through provisioning's HTTP API, one machine at a time, on the bench instance (see
/// <see cref="BenchStack"/>): the whole creation saga (quota, address, launch, registration), real QEMU micro-VMs
/// (cold, restored from the agent's ready snapshot, and cold on a disk) and real sandboxes (in memory and on a disk), each
/// in its tenant's segment. Each figure
/// is the time from POST /machines to the answer of /wait?state=running.
/// </summary>
internal static class MachinesBenchmark
{
    public static async Task RunAsync(string[] args)
    {
        var cold = args.Length > 0 ? int.Parse(args[0]) : 10;
        var snapshot = args.Length > 1 ? int.Parse(args[1]) : 40;
        var sandboxes = args.Length > 2 ? int.Parse(args[2]) : 100;
        await using var stack = await BenchStack.StartAsync(new Dictionary<string, string>());
        using var client = await stack.AdminAsync();
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (!(await client.GetStringAsync("/api/v1/hosts")).Contains("\"snapshots\":[{", StringComparison.Ordinal))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("the host agent made no snapshot in 3 minutes");
            }

            await Task.Delay(200);
        }

        using var tenant = await stack.TenantAsync();
        await MeasureAsync(tenant, "sandbox", 5, new { kind = "sandbox", vcpus = 1, memoryMiB = 64 }, _ => Task.CompletedTask);
        Report("sandbox", await MeasureAsync(tenant, "sandbox", sandboxes, new { kind = "sandbox", vcpus = 1, memoryMiB = 64 }, _ => Task.CompletedTask));
        double? restoredMemory = null;
        Report("microvm_snapshot", await MeasureAsync(tenant, "snap", snapshot, new { kind = "microvm", vcpus = 1, memoryMiB = 128 }, async machine =>
        {
            restoredMemory ??= await MemoryFileMiBAsync(machine);
        }));
        Benchmarks.Report("microvm_snapshot_memory_file_mib", restoredMemory ?? double.NaN);
        double? rss = null;
        Report("microvm_cold", await MeasureAsync(tenant, "cold", cold, new { kind = "microvm", vcpus = 1, memoryMiB = 128, boot = "cold" }, async machine =>
        {
            if (rss is null)
            {
                await Task.Delay(TimeSpan.FromSeconds(2)); // idle: past the guest's boot work
                rss = QemuRssMiB(machine) - 128;
            }
        }));
        Benchmarks.Report("microvm_rss_overhead_mib", rss ?? double.NaN);
        // With a 1 GiB disk: made (a sparse ext4 image), then the guest's init copies its system onto it and changes root.
        Report("microvm_disk_cold", await MeasureAsync(tenant, "disk", cold, new { kind = "microvm", vcpus = 1, memoryMiB = 128, diskMiB = 1024 }, _ => Task.CompletedTask));
        // /scratch on a 1 GiB disk (made and loop-mounted) instead of memory.
        Report("sandbox_disk", await MeasureAsync(tenant, "sandbox-disk", Math.Max(1, sandboxes / 5), new { kind = "sandbox", vcpus = 1, memoryMiB = 64, diskMiB = 1024 }, _ => Task.CompletedTask));
    }

    internal static void Report(string name, IReadOnlyList<double> milliseconds)
    {
        var sorted = milliseconds.Order().ToArray();
        Benchmarks.Report($"{name}_p50_ms", sorted[(int)Math.Floor((sorted.Length - 1) * 0.50)]);
        Benchmarks.Report($"{name}_p99_ms", sorted[(int)Math.Ceiling((sorted.Length - 1) * 0.99)]);
    }

    /// <summary>Creates, waits for running, then destroys <paramref name="count"/> machines one after another (timing the destroys into <paramref name="destroys"/> when given).</summary>
    internal static async Task<IReadOnlyList<double>> MeasureAsync(HttpClient tenant, string prefix, int count, object body, Func<Guid, Task> whileRunning, List<double>? destroys = null)
    {
        var timings = new List<double>();
        for (var i = 0; i < count; i++)
        {
            var clock = Stopwatch.StartNew();
            var created = await tenant.PostAsJsonAsync("/api/v1/machines", body);
            if (created.StatusCode != HttpStatusCode.Accepted)
            {
                throw new InvalidOperationException($"create: {await created.Content.ReadAsStringAsync()}");
            }

            var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
            var running = await tenant.GetAsync($"/api/v1/machines/{id}/wait?state=running&timeout=60s");
            timings.Add(clock.Elapsed.TotalMilliseconds);
            if (running.StatusCode != HttpStatusCode.OK)
            {
                throw new InvalidOperationException($"{prefix} {i}: {await running.Content.ReadAsStringAsync()}");
            }

            await whileRunning(id);
            clock.Restart();
            await tenant.DeleteAsync($"/api/v1/machines/{id}");
            await tenant.GetAsync($"/api/v1/machines/{id}/wait?state=destroyed&timeout=60s");
            destroys?.Add(clock.Elapsed.TotalMilliseconds);
        }

        return timings;
    }

    /// <summary>What the file a restored guest's memory is mapped from (its own copy, or the snapshot's shared one) takes on its tmpfs: its allocated blocks, not its size.</summary>
    private static async Task<double> MemoryFileMiBAsync(Guid machineId)
    {
        // A pooled VM's command line names the pool, not the machine: its QEMU is the one holding the machine's files open
        // (its serial log moved with its work directory).
        var machine = machineId.ToString("N");
        var files = Process.GetProcessesByName("qemu-system-x86_64").Select(OpenFiles).Single(files => files.Any(f => f.Contains(machine, StringComparison.Ordinal)));
        var path = files.First(target => target.EndsWith(".ram", StringComparison.Ordinal) || target.EndsWith("/memory", StringComparison.Ordinal));
        using var du = Process.Start(new ProcessStartInfo("du", ["-k", path]) { RedirectStandardOutput = true })!;
        var kib = (await du.StandardOutput.ReadToEndAsync()).Split('\t')[0];
        await du.WaitForExitAsync();
        return long.Parse(kib) / 1024.0;
    }

    private static string[] OpenFiles(Process process) =>
        Directory.GetFiles($"/proc/{process.Id}/fd").Select(fd => new FileInfo(fd).LinkTarget).OfType<string>().ToArray();

    private static Process QemuOf(Guid machineId) =>
        Process.GetProcessesByName("qemu-system-x86_64").Single(p => File.ReadAllText($"/proc/{p.Id}/cmdline").Contains(machineId.ToString("N"), StringComparison.Ordinal));

    private static double QemuRssMiB(Guid machineId)
    {
        var qemu = QemuOf(machineId);
        var rss = File.ReadLines($"/proc/{qemu.Id}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(rss.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
    }
}
