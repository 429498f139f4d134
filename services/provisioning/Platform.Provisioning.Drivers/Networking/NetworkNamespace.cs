using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace Platform.Provisioning.Drivers.Networking;

/// <summary>
/// A named network namespace (<c>ip netns</c>) holding one tap device whose address is the gateway of whatever
/// is plugged into the tap. The host reaches inside through <see cref="ConnectAsync"/>. A name is only one of the
/// things that keep a namespace alive: so are the processes in it. One left to a process (<see cref="LeaveToAsync"/>)
/// has no name and ends with that process.
/// </summary>
public sealed partial class NetworkNamespace
{
    private const string NamespaceDirectory = "/var/run/netns";
    private const int CloneNewNet = 0x40000000;

    /// <summary>Set when the namespace has no name: the process that holds it, through which it is entered.</summary>
    private readonly int? _heldBy;

    private NetworkNamespace(string name, string tap, IPAddress hostAddress, int prefixLength, int? heldBy = null)
    {
        Name = name;
        Tap = tap;
        HostAddress = hostAddress;
        PrefixLength = prefixLength;
        _heldBy = heldBy;
    }

    /// <summary>Its name; for one left to a process, the name it had.</summary>
    public string Name { get; }

    public string Tap { get; }

    /// <summary>The tap's own address: the gateway of the guest on the other side.</summary>
    public IPAddress HostAddress { get; }

    public int PrefixLength { get; }

    /// <summary>Creates the namespace with its tap up and addressed; on any failure nothing is left behind.</summary>
    public static async Task<NetworkNamespace> CreateAsync(string name, string tap, IPAddress hostAddress, int prefixLength)
    {
        Validate(name, tap, hostAddress, prefixLength);
        var network = new NetworkNamespace(name, tap, hostAddress, prefixLength);
        await RunIpAsync("netns", "add", name);
        try
        {
            // One process for all of it: each ip started costs a few milliseconds, and machines start in tens.
            await RunIpAsync(["-n", name, "-batch", "-"], $"""
                tuntap add dev {tap} mode tap
                address add {hostAddress}/{prefixLength} dev {tap}
                link set lo up
                link set {tap} up

                """);
            return network;
        }
        catch
        {
            await network.DeleteAsync();
            throw;
        }
    }

    /// <summary>
    /// Removes the namespace's name, and with it the namespace and its tap unless a process still runs in it (then they
    /// go with the last one); a namespace that is gone already, or has no name, is fine.
    /// </summary>
    public async Task DeleteAsync()
    {
        if (_heldBy is not null || !File.Exists(Path.Combine(NamespaceDirectory, Name)))
        {
            return;
        }

        var (exitCode, _, errors) = await TryRunIpAsync("netns", "delete", Name);
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

    /// <summary>The namespace <paramref name="processId"/> runs in, named or not (a sandbox's): to connect into it.</summary>
    public static NetworkNamespace OfProcess(int processId) =>
        new($"process-{processId}", "unknown", IPAddress.Any, 0, processId);

    /// <summary>
    /// Removes the name of the namespace <paramref name="processId"/> runs in: from then on it lives exactly as long as
    /// that process (and whatever else runs in it), so that nothing of it outlives the process even if this one is
    /// killed. It is still entered (<see cref="ConnectAsync"/>) and can be named again (<see cref="NameAsync"/>).
    /// </summary>
    public async Task<NetworkNamespace> LeaveToAsync(int processId)
    {
        if (_heldBy is not null)
        {
            throw new InvalidOperationException($"The namespace {Name} has been left to process {_heldBy} already.");
        }

        // Without this check a process that is not in the namespace yet (ip netns exec before its setns) would lose it.
        var (exitCode, names, _) = await TryRunIpAsync("netns", "identify", processId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (exitCode != 0 || !names.Split('\n', StringSplitOptions.TrimEntries).Contains(Name))
        {
            throw new InvalidOperationException($"Process {processId} does not run in the namespace {Name}.");
        }

        var held = new NetworkNamespace(Name, Tap, HostAddress, PrefixLength, processId);
        await DeleteAsync();
        return held;
    }

    /// <summary>
    /// Gives a namespace left to a process the name <paramref name="name"/>, and its tap <paramref name="hostAddress"/>
    /// in place of the address it had. On failure the name is removed again.
    /// </summary>
    public async Task<NetworkNamespace> NameAsync(string name, IPAddress hostAddress, int prefixLength)
    {
        // ip netns attach names the namespace of a process: only one held by a process can be named.
        if (_heldBy is not { } processId)
        {
            throw new InvalidOperationException($"The namespace {Name} has a name already.");
        }

        Validate(name, Tap, hostAddress, prefixLength);
        await RunIpAsync("netns", "attach", name, processId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var named = new NetworkNamespace(name, Tap, hostAddress, prefixLength);
        try
        {
            await RunIpAsync(["-n", name, "-batch", "-"], $"""
                address flush dev {Tap}
                address add {hostAddress}/{prefixLength} dev {Tap}

                """);
            return named;
        }
        catch
        {
            await named.DeleteAsync();
            throw;
        }
    }

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
        var socket = await CreateSocketAsync(address.AddressFamily);
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

    /// <summary>Connects to the abstract unix socket <paramref name="name"/> of the namespace (abstract names are per network namespace).</summary>
    public async Task<Socket> ConnectAbstractAsync(string name, CancellationToken cancellationToken)
    {
        var socket = await CreateSocketAsync(AddressFamily.Unix);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint("\0" + name), cancellationToken);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A stream socket inside the namespace (TCP, or unix), to connect or to listen with. A socket belongs to the
    /// namespace of the thread that created it, wherever it is used afterwards. setns changes the calling thread for
    /// good, so it happens on a thread of our own that ends right after; a pool thread would carry the namespace into
    /// whatever work it picks up next.
    /// </summary>
    public Task<Socket> CreateSocketAsync(AddressFamily family)
    {
        var created = new TaskCompletionSource<Socket>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                using var handle = File.OpenHandle(EntryPath);
                if (SetNamespace((int)handle.DangerousGetHandle(), CloneNewNet) != 0)
                {
                    throw new IOException($"setns into {Name} failed: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
                }

                created.SetResult(new Socket(family, SocketType.Stream, family == AddressFamily.Unix ? ProtocolType.Unspecified : ProtocolType.Tcp));
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

    /// <summary>Where the namespace is entered: its name, or the process it was left to.</summary>
    private string EntryPath => _heldBy is { } processId ? $"/proc/{processId}/ns/net" : Path.Combine(NamespaceDirectory, Name);

    private static void Validate(string name, string tap, IPAddress hostAddress, int prefixLength)
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
    }

    private static Task RunIpAsync(params string[] arguments) => RunIpAsync(arguments, null);

    /// <summary>Runs ip through <see cref="HostTool"/>; <paramref name="input"/> is its standard input (commands for <c>-batch -</c>).</summary>
    private static Task RunIpAsync(string[] arguments, string? input) => HostTool.RunAsync(["ip", .. arguments], input);

    private static async Task<(int ExitCode, string Output, string Errors)> TryRunIpAsync(params string[] arguments)
    {
        var result = await HostTool.TryRunAsync(["ip", .. arguments]);
        return (result.ExitCode, result.Output, result.Errors);
    }

    [DllImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static extern int SetNamespace(int fd, int nstype);

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex SafeName();
}
