using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Platform.Contracts;
using Platform.Contracts.Provisioning;

namespace Platform.Provisioning.Machines;

/// <summary>
/// The body of <c>POST /api/v1/machines</c>; <see cref="Region"/> and <see cref="InstanceType"/> only for cloud machines. With
/// <see cref="FromSnapshot"/> the machine is made as its snapshot's machine was (what the request leaves out comes from it).
/// </summary>
public sealed record CreateMachineRequest(
    string? Name,
    string? Kind,
    string? Template,
    string? Driver,
    int? Vcpus,
    int? MemoryMiB,
    int? DiskMiB,
    Dictionary<string, string>? Labels,
    string? ExitNodeId,
    List<string>? Command,
    string? Boot,
    string? Region = null,
    string? InstanceType = null,
    MachineProbe? Probe = null,
    int? TtlSeconds = null,
    IdlePolicy? Idle = null,
    string? FromSnapshot = null);

public sealed record MachineAccepted(Guid Id, Guid OperationId);

/// <summary>The body of <c>PATCH /api/v1/machines/{id}/lifecycle</c>: the whole policy; a field left out or null is cleared.</summary>
public sealed record LifecycleRequest(int? TtlSeconds, IdlePolicy? Idle);

public static class MachineKinds
{
    public const string MicroVm = "microvm";
    public const string Sandbox = "sandbox";
    public const string Container = "container";
    public const string Cloud = "cloud";

    public static IReadOnlyList<string> All { get; } = [MicroVm, Sandbox, Container, Cloud];

    /// <summary>The driver a kind gets when the request names none; a cloud machine must name its cloud.</summary>
    public static string? DefaultDriver(string kind) => kind is Cloud ? null : kind;

    public static string? DefaultTemplate(string kind) => kind switch
    {
        MicroVm => "microvm-default",
        Sandbox => "sandbox-host",
        _ => null,
    };
}

/// <summary>
/// The checks a request passes before anything is placed: what every machine must be, whatever host takes
/// it. What a driver accepts (its sizes) is checked against the capacity hosts report, in placement.
/// </summary>
public static partial class MachineRequestRules
{
    public const int MaxVcpus = 64;
    public const int MaxMemoryMiB = 1024 * 1024;
    public const int MaxDiskMiB = 2 * 1024 * 1024;

    /// <summary>The smallest disk a machine gets (0 asks for none): an ext4 filesystem needs room for its journal.</summary>
    public const int MinDiskMiB = 16;
    public const int MaxLabels = 32;
    public const int MaxCommandArguments = 64;
    public const int MaxProbeIntervalSeconds = 3600;
    public const int MaxProbeFailures = 100;

    public static IReadOnlyList<string> Drivers { get; } = ["microvm", "sandbox", "container", "aws", "gcp", "azure", "simulated"];

    public static IReadOnlyList<string> BootModes { get; } = ["auto", "cold"];

    public static Dictionary<string, string[]> Check(CreateMachineRequest request)
    {
        var errors = new Dictionary<string, string[]>();
        void Refuse(string field, string message) => errors[field] = [message];

        if (request.Name is not null && !DnsLabel().IsMatch(request.Name))
        {
            Refuse("name", "must be a DNS label: 1–63 lowercase letters, digits and hyphens, not starting or ending with a hyphen");
        }

        if (request.Kind is null)
        {
            Refuse("kind", $"is required: one of {string.Join(", ", MachineKinds.All)}");
        }
        else if (!MachineKinds.All.Contains(request.Kind))
        {
            Refuse("kind", $"must be one of {string.Join(", ", MachineKinds.All)}");
        }

        if (request.Driver is not null && !Drivers.Contains(request.Driver))
        {
            Refuse("driver", $"must be one of {string.Join(", ", Drivers)}");
        }
        else if (request.Driver is null && request.Kind == MachineKinds.Cloud)
        {
            Refuse("driver", "is required for a cloud machine: aws, gcp or azure");
        }

        if (request.Vcpus is not { } vcpus || vcpus is < 1 or > MaxVcpus)
        {
            Refuse("vcpus", $"is required, between 1 and {MaxVcpus}");
        }

        if (request.MemoryMiB is not { } memory || memory is < 16 or > MaxMemoryMiB)
        {
            Refuse("memoryMiB", $"is required, between 16 and {MaxMemoryMiB}");
        }

        if (request.DiskMiB is < 0 or > MaxDiskMiB or (> 0 and < MinDiskMiB))
        {
            Refuse("diskMiB", $"must be 0 (no disk) or between {MinDiskMiB} and {MaxDiskMiB}");
        }

        if (request.Labels is { } labels)
        {
            if (labels.Count > MaxLabels)
            {
                Refuse("labels", $"may hold at most {MaxLabels} labels");
            }
            else if (labels.FirstOrDefault(l => !LabelKey().IsMatch(l.Key) || l.Value is null || l.Value.Length > 256) is { Key: not null } bad)
            {
                Refuse("labels", $"'{bad.Key}': keys are 1–63 lowercase letters, digits, '.', '_', '/' or '-' starting with a letter or digit; values at most 256 characters");
            }
        }

        if (request.ExitNodeId is not null && !Guid.TryParse(request.ExitNodeId, out _))
        {
            Refuse("exitNodeId", "must be the id of an exit node (GET /api/v1/exit-nodes lists them)");
        }

        if (request.Command is { } command && (command.Count is 0 or > MaxCommandArguments || command.Any(a => a is null || a.Length > 4096 || a.Contains('\0'))))
        {
            Refuse("command", $"must hold 1 to {MaxCommandArguments} arguments of at most 4096 characters each");
        }
        else if (request.Command is not null && request.Kind == MachineKinds.MicroVm)
        {
            Refuse("command", "a micro-VM runs its template's init; command is for sandboxes and containers");
        }

        if (request.Boot is not null && !BootModes.Contains(request.Boot))
        {
            Refuse("boot", $"must be one of {string.Join(", ", BootModes)}");
        }

        // Which regions and instance types exist is the cloud drivers' to say, in placement.
        if (request.Region is not null && request.Kind != MachineKinds.Cloud)
        {
            Refuse("region", "only cloud machines have a region");
        }

        if (request.InstanceType is not null && request.Kind != MachineKinds.Cloud)
        {
            Refuse("instanceType", "only cloud machines have an instance type");
        }

        if (request.Probe is { } probe && ProbeProblem(probe) is { } problem)
        {
            Refuse("probe", problem);
        }

        foreach (var (field, lifecycleProblem) in LifecycleProblems(request.TtlSeconds, request.Idle, request.Kind))
        {
            Refuse(field, lifecycleProblem);
        }

        return errors;
    }

    public const int MinLifecycleSeconds = 10;

    /// <summary>Thirty days.</summary>
    public const int MaxLifecycleSeconds = 30 * 24 * 3600;

    public static IReadOnlyList<string> IdleActions { get; } = ["stop", "pause", "destroy"];

    /// <summary>What is wrong with a time-to-live and an idle policy, field by field (<c>ttlSeconds</c>, <c>idle</c>); none when both are absent.</summary>
    public static IEnumerable<(string Field, string Problem)> LifecycleProblems(int? ttlSeconds, IdlePolicy? idle, string? kind)
    {
        if (ttlSeconds is < MinLifecycleSeconds or > MaxLifecycleSeconds)
        {
            yield return ("ttlSeconds", $"must be between {MinLifecycleSeconds} and {MaxLifecycleSeconds} (30 days)");
        }

        if (idle is null)
        {
            yield break;
        }

        if (idle.AfterSeconds is < MinLifecycleSeconds or > MaxLifecycleSeconds)
        {
            yield return ("idle", $"afterSeconds must be between {MinLifecycleSeconds} and {MaxLifecycleSeconds} (30 days)");
        }

        if (!IdleActions.Contains(idle.Action))
        {
            yield return ("idle", $"action must be one of {string.Join(", ", IdleActions)}, not '{idle.Action}'");
        }
        else if (idle.Action == "pause" && kind == MachineKinds.Cloud)
        {
            yield return ("idle", "a cloud machine cannot be paused: its idle action is stop or destroy");
        }
    }

    /// <summary>The request's lifecycle policy; null when it sets neither a time-to-live nor an idle policy.</summary>
    public static MachineLifecyclePolicy? LifecycleOf(int? ttlSeconds, IdlePolicy? idle) =>
        ttlSeconds is null && idle is null ? null : new MachineLifecyclePolicy(ttlSeconds, idle);

    /// <summary>What is wrong with a declared probe, or null: exactly one of tcp and http, a real port, an absolute path, sane timing.</summary>
    private static string? ProbeProblem(MachineProbe probe)
    {
        if ((probe.Tcp is null) == (probe.Http is null))
        {
            return "declares exactly one of tcp (a port) or http ({port, path})";
        }

        if (probe.Tcp is < 1 or > 65535 || probe.Http is { Port: < 1 or > 65535 })
        {
            return "its port must be between 1 and 65535";
        }

        if (probe.Http is { } http && (http.Path is null || !http.Path.StartsWith('/') || http.Path.Length > 1024 || http.Path.Any(char.IsControl) || http.Path.Contains(' ')))
        {
            return "http.path must be an absolute path such as /healthz (at most 1024 characters, no spaces)";
        }

        if (probe.IntervalSeconds is < 1 or > MaxProbeIntervalSeconds)
        {
            return $"intervalSeconds must be between 1 and {MaxProbeIntervalSeconds}";
        }

        return probe.UnhealthyAfter is < 1 or > MaxProbeFailures ? $"unhealthyAfter must be between 1 and {MaxProbeFailures}" : null;
    }

    /// <summary>
    /// The request as it stands for a machine made from <paramref name="snapshot"/>: its kind, driver and template are the
    /// snapshot's; its shape, command and labels too, unless the request gives its own.
    /// </summary>
    public static CreateMachineRequest StartingFrom(CreateMachineRequest request, Snapshots.Snapshot snapshot) => request with
    {
        Kind = snapshot.Kind,
        Driver = snapshot.Driver,
        Template = $"{snapshot.Template.Name}@{snapshot.Template.Version}",
        Vcpus = request.Vcpus ?? snapshot.Shape.Vcpus,
        MemoryMiB = request.MemoryMiB ?? snapshot.Shape.MemoryMiB,
        DiskMiB = request.DiskMiB ?? snapshot.Shape.DiskMiB,
        Command = request.Command ?? snapshot.Command?.ToList(),
        Labels = request.Labels ?? new Dictionary<string, string>(snapshot.Labels),
    };

    /// <summary>What the request asks that a machine made from <paramref name="snapshot"/> cannot be, field by field.</summary>
    public static IEnumerable<(string Field, string Problem)> SnapshotConflicts(CreateMachineRequest request, Snapshots.Snapshot snapshot)
    {
        if (request.Kind is not null && request.Kind != snapshot.Kind)
        {
            yield return ("kind", $"the snapshot is of a {snapshot.Kind} machine");
        }

        if (request.Driver is not null && request.Driver != snapshot.Driver)
        {
            yield return ("driver", $"the snapshot is of a {snapshot.Driver} machine");
        }

        if (request.Template is not null)
        {
            yield return ("template", $"a machine made from a snapshot runs its snapshot's template ({snapshot.Template.Name}@{snapshot.Template.Version}): leave it out");
        }

        if (request.Boot is "cold")
        {
            yield return ("boot", "a machine made from a snapshot starts from it, not cold");
        }

        // A micro-VM's snapshot is its memory and devices: a clone has the same vCPUs and memory.
        if (snapshot.Kind == MachineKinds.MicroVm && request.Vcpus is { } vcpus && vcpus != snapshot.Shape.Vcpus)
        {
            yield return ("vcpus", $"a micro-VM made from a snapshot has the snapshot's {snapshot.Shape.Vcpus} vCPUs");
        }

        if (snapshot.Kind == MachineKinds.MicroVm && request.MemoryMiB is { } memory && memory != snapshot.Shape.MemoryMiB)
        {
            yield return ("memoryMiB", $"a micro-VM made from a snapshot has the snapshot's {snapshot.Shape.MemoryMiB} MiB");
        }
    }

    /// <summary>Two requests are the same request when this hash is: it keys the Idempotency-Key check.</summary>
    public static string Hash(CreateMachineRequest request) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(
            request with { Labels = request.Labels is null ? null : new Dictionary<string, string>(request.Labels.OrderBy(l => l.Key, StringComparer.Ordinal)) },
            PlatformJson.Options))));

    public static MachineShape ShapeOf(CreateMachineRequest request) => new(request.Vcpus!.Value, request.MemoryMiB!.Value, request.DiskMiB ?? 0);

    [GeneratedRegex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    private static partial Regex DnsLabel();

    [GeneratedRegex("^[a-z0-9][a-z0-9._/-]{0,62}$")]
    private static partial Regex LabelKey();
}
