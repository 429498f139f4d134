using System.Globalization;
using System.Runtime.InteropServices;

namespace Platform.HostAgent.Telemetry;

/// <summary>What one process (a micro-VM's QEMU) uses, and what its network namespace moved, from <c>/proc</c>.</summary>
public static class ProcessUsage
{
    private const int ClockTicksName = 2; // _SC_CLK_TCK

    private static readonly long NanosecondsPerTick = 1_000_000_000 / Math.Max(1, SystemConfiguration(ClockTicksName));

    /// <summary>User and system CPU time of the process (all its threads), in nanoseconds.</summary>
    public static long CpuNanoseconds(int processId)
    {
        var stat = File.ReadAllText($"/proc/{processId}/stat");
        // The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return ticks * NanosecondsPerTick;
    }

    /// <summary>The process's resident memory (VmRSS), in bytes.</summary>
    public static long ResidentBytes(int processId)
    {
        var line = File.ReadLines($"/proc/{processId}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>
    /// Bytes received and sent by every interface but loopback of the network namespace <paramref name="processId"/> runs
    /// in, as those interfaces count them.
    /// </summary>
    public static (long Received, long Sent) NetworkBytes(int processId)
    {
        long received = 0, sent = 0;
        // Two header lines, then "  name: rx-bytes rx-packets … (8 receive columns) tx-bytes …".
        foreach (var line in File.ReadLines($"/proc/{processId}/net/dev").Skip(2))
        {
            var colon = line.IndexOf(':');
            if (colon < 0 || line[..colon].Trim() == "lo")
            {
                continue;
            }

            var columns = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            received += long.Parse(columns[0], CultureInfo.InvariantCulture);
            sent += long.Parse(columns[8], CultureInfo.InvariantCulture);
        }

        return (received, sent);
    }

    [DllImport("libc", EntryPoint = "sysconf")]
    private static extern long SystemConfiguration(int name);
}
