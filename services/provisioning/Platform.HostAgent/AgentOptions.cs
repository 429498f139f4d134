using System.Net;
using Platform.Contracts.Provisioning;
using Platform.HostAgent.Drivers;
using Platform.Provisioning.Drivers.Networking;

namespace Platform.HostAgent;

/// <summary>The host agent's settings, section <c>Platform:Agent</c>.</summary>
public sealed class AgentOptions
{
    public const string Section = "Platform:Agent";

    /// <summary>Where the agent keeps its host id and its record of the machines it runs.</summary>
    public string StatePath { get; set; } = "/var/lib/platform/agent";

    /// <summary>
    /// A file in <see cref="StatePath"/> that has the agent stop and remove every machine when it stops (it deletes the
    /// file then); without it the agent leaves its machines running for its next start to adopt.
    /// </summary>
    public const string RemoveMachinesOnStopFile = "remove-machines-on-stop";

    /// <summary>Where templates are built (<c>{TemplatesPath}/{name}/current/template.json</c>).</summary>
    public string TemplatesPath { get; set; } = "/var/lib/platform/templates";

    /// <summary>This host's name in the API; the machine's name when unset.</summary>
    public string? HostName { get; set; }

    /// <summary>
    /// The drivers this host offers; <c>microvm</c> and <c>sandbox</c> when none is named. <c>container</c> and <c>simulated</c> only when
    /// named here; <c>aws</c>, <c>gcp</c>, <c>azure</c> with their sections below. (Empty by default: the configuration
    /// binder adds to a list's defaults, so a host naming only <c>aws</c> would offer micro-VMs too.)
    /// </summary>
    public List<string> Drivers { get; set; } = [];

    public IReadOnlyList<string> OfferedDrivers => Drivers.Count > 0 ? Drivers : ["microvm", "sandbox"];

    /// <summary>How many processes and threads one sandbox may run.</summary>
    public int SandboxMaxProcesses { get; set; } = 512;

    public SimulatedOptions Simulated { get; set; } = new();

    /// <summary>The container driver's engine and limits (<c>Platform:Agent:Container</c>).</summary>
    public ContainerOptions Container { get; set; } = new();

    public AwsOptions Aws { get; set; } = new();

    public GcpOptions Gcp { get; set; } = new();

    public AzureOptions Azure { get; set; } = new();

    /// <summary>
    /// Where micro-VMs' memory, sockets, serial logs and snapshots live while the agent runs: a tmpfs (guest
    /// memory is mapped from here) with a short path (unix socket paths are at most 107 bytes).
    /// </summary>
    public string MicroVmRunPath { get; set; } = "/dev/shm/platform-microvm";

    /// <summary>The shapes (vCPUs, memory) the agent keeps a ready snapshot of, per micro-VM template.</summary>
    public List<MachineShape> SnapshotShapes { get; set; } = [new(1, 128, 0)];

    /// <summary>
    /// How many micro-VMs the agent keeps restored and warmed per snapshot, for machines of its template and shape to
    /// start from (they start from the snapshot itself while the pool is empty); 0 keeps none.
    /// </summary>
    public int SnapshotPoolSize { get; set; } = 2;

    /// <summary>Where host ports for machines' port forwards come from (<c>Platform:Agent:PortForwards</c>).</summary>
    public PortForwardSettings PortForwards { get; set; } = new();

    /// <summary>How often the agent repeats its capacity report.</summary>
    public TimeSpan ReportInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often the agent samples its machines and the host and reports their metrics.</summary>
    public TimeSpan MetricsInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Where provisioning reaches this agent for exec, files and logs (its data plane, served with its health endpoints);
    /// the agent's own address (<c>urls</c>) when that is one concrete http URL.
    /// </summary>
    public string? DataPlaneUrl { get; set; }

    /// <summary>Limits on exec, files and archives (<c>Platform:Agent:Guests</c>).</summary>
    public Guests.GuestOptions Guests { get; set; } = new();

    /// <summary>How often a machine's driver heartbeat (a micro-VM's guest agent) is checked, unless its declared probe sets an interval.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// The host ports the agent forwards to machines, and the network the tenant segments' uplinks take their /30s from.
/// Keep the range out of the kernel's ephemeral ports (<c>net.ipv4.ip_local_port_range</c>, 32768–60999 by default) or
/// reserve it (<c>net.ipv4.ip_local_reserved_ports</c>): a forwarded port's traffic goes to the machine even if a program
/// binds the port later.
/// </summary>
public sealed class PortForwardSettings
{
    public int FirstPort { get; set; } = 20000;

    public int LastPort { get; set; } = 20999;

    /// <summary>Link-local, so that it collides with no routed network: 256 segments with forwards at once.</summary>
    public string TransferNetwork { get; set; } = "169.254.200.0/22";

    /// <summary>The host address the API shows with each forward; the source address of the host's default route when unset.</summary>
    public string? Address { get; set; }

    public PortForwardOptions ToOptions() => new(FirstPort, LastPort, IPNetwork.Parse(TransferNetwork));
}
