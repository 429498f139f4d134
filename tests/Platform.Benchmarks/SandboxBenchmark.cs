using System.Diagnostics;
using Platform.Provisioning.Drivers.Sandbox;

namespace Platform.Benchmarks;

/// <summary>
/// How long a sandbox takes from the start call until its first process has run and exited (<c>/bin/true</c>):
/// cgroup creation, bubblewrap's namespaces and mounts, exec, exit and cleanup excluded.
/// </summary>
internal static class SandboxBenchmark
{
    private const int Runs = 100;

    public static async Task RunAsync(string[] args)
    {
        var runner = new SandboxRunner(Cgroups.Detect());
        var limits = new SandboxLimits(MemoryMiB: 64, MaxProcesses: 32, Cpus: 1);
        var durations = new List<double>();
        for (var i = 0; i < Runs + 5; i++)
        {
            var id = $"bench-{Guid.NewGuid():N}"[..18];
            var clock = Stopwatch.StartNew();
            await using var sandbox = runner.Start(new SandboxSpec(id, ["/bin/true"], limits, "bench"));
            var exit = await sandbox.WaitAsync(TimeSpan.FromSeconds(30));
            clock.Stop();
            if (exit.ExitCode != 0)
            {
                throw new InvalidOperationException($"the sandbox failed: {exit.Errors}");
            }

            if (i >= 5)
            {
                durations.Add(clock.Elapsed.TotalMilliseconds);
            }
        }

        durations.Sort();
        Benchmarks.Report("sandbox_run_p50_ms", durations[durations.Count / 2]);
        Benchmarks.Report("sandbox_run_p99_ms", durations[(int)Math.Ceiling(durations.Count * 0.99) - 1]);
    }
}
