using System.Collections.Concurrent;

namespace Platform.Provisioning.Drivers.Networking;

/// <summary>
/// What tunnels and uplinks share in a tenant segment: a lock (they add and remove rules in the same namespace) and
/// IPv4 forwarding, which is on exactly while something routes beyond the bridge. Forwarding is a switch of the
/// segment's own namespace; the host's is never touched.
/// </summary>
internal static class SegmentForwarding
{
    private static readonly ConcurrentDictionary<string, SemaphoreSlim> Locks = new(StringComparer.Ordinal);

    /// <summary>Holds the segment's lock until disposed; one process (the host agent) changes a segment at a time.</summary>
    public static async Task<IDisposable> LockAsync(string segment)
    {
        var gate = Locks.GetOrAdd(segment, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync();
        return new Held(gate);
    }

    /// <summary>Forwarding on while the segment holds a tunnel or an uplink, off again when it holds neither.</summary>
    public static async Task UpdateAsync(string segment)
    {
        if (!NamespaceLinks.Exists(segment))
        {
            return;
        }

        var links = await NamespaceLinks.NamesAsync(segment);
        var needed = links.Any(l => l.StartsWith(WireGuardTunnel.InterfacePrefix, StringComparison.Ordinal) || l == SegmentUplink.SegmentEnd);
        await HostTool.RunAsync([.. HostTool.In(segment), "sysctl", "-qw", $"net.ipv4.ip_forward={(needed ? 1 : 0)}"]);
    }

    private sealed class Held(SemaphoreSlim gate) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                gate.Release();
            }
        }
    }
}
