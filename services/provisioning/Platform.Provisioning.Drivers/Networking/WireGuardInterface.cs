using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;

namespace Platform.Provisioning.Drivers.Networking;

public enum WireGuardImplementation
{
    /// <summary>The kernel module: <c>ip link add … type wireguard</c>.</summary>
    Kernel,

    /// <summary>wireguard-go: a daemon per interface behind a TUN device, its control socket in /var/run/wireguard.</summary>
    Userspace,
}

/// <summary>
/// WireGuard interfaces on this host, the kernel's when it has the module and wireguard-go's otherwise. Either way the
/// UDP socket belongs to the namespace the interface was created in and stays there when the interface is moved.
/// wireguard-go's control sockets share one directory whatever the namespace, so a name is unique host-wide.
/// </summary>
public static partial class WireGuardInterface
{
    private const string SocketDirectory = "/var/run/wireguard";
    private const string Daemon = "wireguard-go";

    private static readonly Lazy<Task<WireGuardImplementation>> Detected = new(DetectAsync);

    /// <summary>Which implementation this host uses, probed once per process.</summary>
    public static Task<WireGuardImplementation> ImplementationAsync() => Detected.Value;

    /// <summary>Creates an interface, down and unconfigured, in <paramref name="networkNamespace"/> (this process's own when null).</summary>
    public static async Task CreateAsync(string name, string? networkNamespace = null)
    {
        RequireName(name);
        if (await ImplementationAsync() == WireGuardImplementation.Kernel)
        {
            await HostTool.RunAsync([.. HostTool.In(networkNamespace), "ip", "link", "add", name, "type", "wireguard"]);
            return;
        }

        // The daemon forks and its first process returns once the TUN device and control socket exist.
        await HostTool.RunAsync([.. HostTool.In(networkNamespace), Daemon, name]);
    }

    /// <summary>Sets the interface's private key (on wg's standard input), its listening port (random when null) and one peer.</summary>
    public static async Task ConfigureAsync(string name, WireGuardPrivateKey privateKey, WireGuardPeer peer, int? listenPort = null, string? networkNamespace = null)
    {
        RequireName(name);
        peer.Validate();
        string[] port = listenPort is { } p ? ["listen-port", p.ToString(CultureInfo.InvariantCulture)] : [];
        var secret = privateKey.Reveal();
        await HostTool.RunAsync([.. HostTool.In(networkNamespace), "wg", "set", name, .. port, "private-key", "/dev/stdin", .. peer.SetArguments()], secret + "\n", secret);
    }

    /// <summary>The most recent handshake with any peer; null when there has been none.</summary>
    public static async Task<DateTimeOffset?> LatestHandshakeAsync(string name, string? networkNamespace = null)
    {
        RequireName(name);
        var output = await HostTool.RunAsync([.. HostTool.In(networkNamespace), "wg", "show", name, "latest-handshakes"]);
        var latest = output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => long.TryParse(line.Split('\t').Last(), CultureInfo.InvariantCulture, out var seconds) ? seconds : 0)
            .DefaultIfEmpty(0)
            .Max();
        return latest == 0 ? null : DateTimeOffset.FromUnixTimeSeconds(latest);
    }

    /// <summary>The address the peers were resolved to (wg resolves DNS names once, when it is told them).</summary>
    public static async Task<IReadOnlyList<IPEndPoint>> PeerEndpointsAsync(string name, string? networkNamespace = null)
    {
        RequireName(name);
        var output = await HostTool.RunAsync([.. HostTool.In(networkNamespace), "wg", "show", name, "endpoints"]);
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => IPEndPoint.TryParse(line.Split('\t').Last(), out var endpoint) ? endpoint : null)
            .OfType<IPEndPoint>()
            .ToArray();
    }

    /// <summary>
    /// Removes the interface from whichever of <paramref name="networkNamespaces"/> holds it (null is this process's own),
    /// and with it wireguard-go's daemon and control socket; gone already is fine. A daemon whose interface cannot be
    /// found is ended (by its process id, after checking its command line); a socket nobody serves is removed.
    /// </summary>
    public static async Task DeleteAsync(string name, params string?[] networkNamespaces)
    {
        RequireName(name);
        foreach (var networkNamespace in networkNamespaces.Append(null).Distinct())
        {
            if (networkNamespace is not null && !File.Exists(Path.Combine("/var/run/netns", networkNamespace)))
            {
                continue;
            }

            if ((await HostTool.TryRunAsync([.. HostTool.In(networkNamespace), "ip", "link", "delete", name])).ExitCode == 0)
            {
                break;
            }
        }

        // Without its TUN device the daemon stops by itself (about 0.1 s); give it a moment before ending it.
        // (Not WaitForExit: the daemon is not our child, so it stays a zombie until init reaps it.)
        var started = DateTime.UtcNow;
        var killed = false;
        while (DaemonOf(name) is { } daemon)
        {
            using (daemon)
            {
                if (!killed && DateTime.UtcNow - started > TimeSpan.FromSeconds(3))
                {
                    daemon.Kill();
                    killed = true;
                }
                else if (DateTime.UtcNow - started > TimeSpan.FromSeconds(10))
                {
                    throw new IOException($"{Daemon} {name} (process {daemon.Id}) did not stop.");
                }
            }

            await Task.Delay(20);
        }

        var socket = SocketPath(name);
        if (File.Exists(socket))
        {
            File.Delete(socket);
        }
    }

    /// <summary>The names starting with <paramref name="prefix"/> that wireguard-go serves, or whose control socket it left behind.</summary>
    public static IReadOnlyList<string> ListUserspace(string prefix) =>
        Directory.Exists(SocketDirectory)
            ? Directory.GetFiles(SocketDirectory, "*.sock")
                .Select(Path.GetFileNameWithoutExtension)
                .OfType<string>()
                .Where(n => n.StartsWith(prefix, StringComparison.Ordinal))
                .Order(StringComparer.Ordinal)
                .ToArray()
            : [];

    /// <summary>The running wireguard-go daemon serving <paramref name="name"/>, if any.</summary>
    public static System.Diagnostics.Process? DaemonOf(string name)
    {
        RequireName(name);

        // Its control socket cannot tell: SO_PEERCRED names the first process, which listened and then exited when
        // it forked the daemon. The daemon keeps the command line it was started with, and names are unique host-wide.
        var expected = $"{Daemon}\0{name}\0";
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), out var pid))
            {
                continue;
            }

            try
            {
                var commandLine = File.ReadAllText(Path.Combine(directory, "cmdline"));
                var state = File.ReadAllText(Path.Combine(directory, "stat"));

                // A zombie has an empty command line already; this guards the moment before.
                if ((commandLine == expected || commandLine.EndsWith("/" + expected, StringComparison.Ordinal)) && !state[(state.LastIndexOf(')') + 2)..].StartsWith('Z'))
                {
                    return System.Diagnostics.Process.GetProcessById(pid);
                }
            }
            catch (Exception exception) when (exception is IOException or UnauthorizedAccessException or ArgumentException)
            {
                // It ended while we looked.
            }
        }

        return null;
    }

    private static string SocketPath(string name) => Path.Combine(SocketDirectory, name + ".sock");

    private static async Task<WireGuardImplementation> DetectAsync()
    {
        var probe = "plwgp" + (Environment.ProcessId % 1_000_000).ToString(CultureInfo.InvariantCulture);
        if ((await IpCommand.TryRunAsync("link", "add", probe, "type", "wireguard")).ExitCode == 0)
        {
            await IpCommand.TryRunAsync("link", "delete", probe);
            return WireGuardImplementation.Kernel;
        }

        return WireGuardImplementation.Userspace;
    }

    private static void RequireName(string name)
    {
        if (!InterfaceName().IsMatch(name))
        {
            throw new ArgumentException("An interface name is 1 to 15 letters, digits, '-' or '_'.", nameof(name));
        }
    }

    [GeneratedRegex("^[A-Za-z0-9_-]{1,15}$")]
    private static partial Regex InterfaceName();
}
