using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace Platform.Provisioning.Drivers.Networking;

/// <summary>
/// A named network namespace (<c>ip netns</c>) holding one tap device whose address is the gateway of whatever
/// is plugged into the tap. The host reaches inside through <see cref="ConnectAsync"/>.
/// </summary>
public sealed partial class NetworkNamespace
{
    private const string NamespaceDirectory = "/var/run/netns";
    private const int CloneNewNet = 0x40000000;

    private NetworkNamespace(string name, string tap, IPAddress hostAddress, int prefixLength)
    {
        Name = name;
        Tap = tap;
        HostAddress = hostAddress;
        PrefixLength = prefixLength;
    }

    public string Name { get; }

    public string Tap { get; }

    /// <summary>The tap's own address: the gateway of the guest on the other side.</summary>
    public IPAddress HostAddress { get; }

    public int PrefixLength { get; }

    /// <summary>Creates the namespace with its tap up and addressed; on any failure nothing is left behind.</summary>
    public static async Task<NetworkNamespace> CreateAsync(string name, string tap, IPAddress hostAddress, int prefixLength)
    {
        if (!SafeName().IsMatch(name))
        {
            throw new ArgumentException("A namespace name is 1 to 64 letters, digits, '-' or '_'.", nameof(name));
        }

        // The kernel's limit for interface names (IFNAMSIZ less the terminator).
        if (!SafeName().IsMatch(tap) || tap.Length > 15)
        {
            throw new ArgumentException("A tap name is 1 to 15 letters, digits, '-' or '_'.", nameof(tap));
        }

        if (hostAddress.AddressFamily != AddressFamily.InterNetwork || prefixLength is < 1 or > 30)
        {
            throw new ArgumentException("The host side is an IPv4 address with a prefix of 1 to 30 bits.", nameof(hostAddress));
        }

        var network = new NetworkNamespace(name, tap, hostAddress, prefixLength);
        await IpCommand.RunAsync("netns", "add", name);
        try
        {
            await IpCommand.RunAsync("-n", name, "tuntap", "add", "dev", tap, "mode", "tap");
            await IpCommand.RunAsync("-n", name, "address", "add", $"{hostAddress}/{prefixLength}", "dev", tap);
            await IpCommand.RunAsync("-n", name, "link", "set", "lo", "up");
            await IpCommand.RunAsync("-n", name, "link", "set", tap, "up");
            return network;
        }
        catch
        {
            await network.DeleteAsync();
            throw;
        }
    }

    /// <summary>Removes the namespace and its tap; a namespace that is gone already is fine.</summary>
    public async Task DeleteAsync()
    {
        if (!File.Exists(Path.Combine(NamespaceDirectory, Name)))
        {
            return;
        }

        var (exitCode, errors) = await IpCommand.TryRunAsync("netns", "delete", Name);
        if (exitCode != 0 && File.Exists(Path.Combine(NamespaceDirectory, Name)))
        {
            throw new IOException($"ip netns delete {Name} failed: {errors.Trim()}");
        }
    }

    /// <summary>Removes a namespace known only by name (one a previous process created); gone already is fine.</summary>
    public static Task DeleteAsync(string name) => Open(name).DeleteAsync();

    /// <summary>A namespace that exists already, known by name: to connect into it or delete it.</summary>
    public static NetworkNamespace Open(string name) =>
        SafeName().IsMatch(name)
            ? new NetworkNamespace(name, "unknown", IPAddress.Any, 0)
            : throw new ArgumentException("A namespace name is 1 to 64 letters, digits, '-' or '_'.", nameof(name));

    /// <summary>The names of the namespaces on this host that start with <paramref name="prefix"/>.</summary>
    public static Task<IReadOnlyList<string>> ListAsync(string prefix)
    {
        // ip netns list reads this directory too; reading it directly spares a process per call.
        IReadOnlyList<string> names = Directory.Exists(NamespaceDirectory)
            ? Directory.GetFiles(NamespaceDirectory).Select(Path.GetFileName).OfType<string>().Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToArray()
            : [];
        return Task.FromResult(names);
    }

    /// <summary>Opens a TCP connection from inside the namespace.</summary>
    public async Task<Socket> ConnectAsync(IPAddress address, int port, CancellationToken cancellationToken)
    {
        var socket = await CreateSocketInsideAsync(address.AddressFamily);
        try
        {
            await socket.ConnectAsync(new IPEndPoint(address, port), cancellationToken);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A socket belongs to the namespace of the thread that created it, wherever it is used afterwards. setns
    /// changes the calling thread for good, so it happens on a thread of our own that ends right after; a pool
    /// thread would carry the namespace into whatever work it picks up next.
    /// </summary>
    private Task<Socket> CreateSocketInsideAsync(AddressFamily family)
    {
        var created = new TaskCompletionSource<Socket>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                using var handle = File.OpenHandle(Path.Combine(NamespaceDirectory, Name));
                if (SetNamespace((int)handle.DangerousGetHandle(), CloneNewNet) != 0)
                {
                    throw new IOException($"setns into {Name} failed: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
                }

                created.SetResult(new Socket(family, SocketType.Stream, ProtocolType.Tcp));
            }
            catch (Exception exception)
            {
                created.SetException(exception);
            }
        })
        {
            IsBackground = true,
            Name = "netns " + Name,
        };
        thread.Start();
        return created.Task;
    }

    [DllImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static extern int SetNamespace(int fd, int nstype);

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex SafeName();
}
