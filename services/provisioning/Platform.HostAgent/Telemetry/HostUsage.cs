using System.Globalization;

namespace Platform.HostAgent.Telemetry;

/// <summary>The host's own CPU and memory in use, from <c>/proc/stat</c> and <c>/proc/meminfo</c>; CPU as cores busy since the last reading.</summary>
public sealed class HostUsage
{
    private (long Busy, long Total)? _last;

    /// <summary>Cores busy on average since the previous call (0 at the first), and memory in use and in all, in bytes.</summary>
    public (double CpuCores, long MemoryBytes, long MemoryTotalBytes) Read()
    {
        // cpu  user nice system idle iowait irq softirq steal …: idle and iowait are the time no core worked.
        var jiffies = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8)
            .Select(v => long.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        var total = jiffies.Sum();
        var busy = total - jiffies[3] - jiffies[4];
        var cores = _last is { } last && total > last.Total ? (double)(busy - last.Busy) / (total - last.Total) * Environment.ProcessorCount : 0;
        _last = (busy, total);

        var memory = File.ReadLines("/proc/meminfo").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(p => p.Length >= 2).ToDictionary(p => p[0].TrimEnd(':'), p => long.Parse(p[1], CultureInfo.InvariantCulture) * 1024);
        return (Math.Max(0, cores), memory["MemTotal"] - memory["MemAvailable"], memory["MemTotal"]);
    }
}
