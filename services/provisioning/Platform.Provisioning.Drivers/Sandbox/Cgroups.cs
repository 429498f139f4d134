namespace Platform.Provisioning.Drivers.Sandbox;

/// <summary>
/// The cgroups that hold one sandbox's limits, under <c>platform/</c>: the v2 unified hierarchy where the host
/// has it (most current hosts), else the v1 memory, pids and cpu controllers (as on these build machines).
/// </summary>
public abstract class Cgroups
{
    public const string Parent = "platform";
    protected const string Root = "/sys/fs/cgroup";

    public static Cgroups Detect() =>
        File.Exists(Path.Combine(Root, "cgroup.controllers")) ? new CgroupsV2() : new CgroupsV1();

    public abstract string Version { get; }

    /// <summary>
    /// The devices a sandbox may read and write (none may it create): null, zero, full, random, urandom, tty, ptmx
    /// and its terminals. On v1 the devices controller enforces it; v2 has no such file (its filter is a BPF program,
    /// not attached here), and there it rests on the rest: a sandbox's /dev holds only these, it has no CAP_MKNOD on
    /// the host, and what it mounts in its user namespace is nodev.
    /// </summary>
    public static readonly IReadOnlyList<string> AllowedDevices = ["c 1:3 rw", "c 1:5 rw", "c 1:7 rw", "c 1:8 rw", "c 1:9 rw", "c 5:0 rw", "c 5:2 rw", "c 136:* rw"];

    /// <summary>
    /// Creates the sandbox's cgroups with its limits and the devices it may use (<see cref="AllowedDevices"/> unless
    /// told otherwise; v1 only); returns the <c>cgroup.procs</c> files a process joins them through.
    /// </summary>
    public abstract IReadOnlyList<string> Create(string id, SandboxLimits limits, IReadOnlyList<string>? devices = null);

    /// <summary>The id of the cgroup under <see cref="Parent"/> that <paramref name="pid"/> is in; null when it is in none (or gone).</summary>
    public static string? MemberOf(int pid)
    {
        try
        {
            return File.ReadAllLines($"/proc/{pid}/cgroup")
                .Select(line => line.Split(':', 3)).Where(parts => parts.Length == 3)
                .Select(parts => parts[2].Split('/', StringSplitOptions.RemoveEmptyEntries))
                .Where(path => path.Length == 2 && path[0] == Parent).Select(path => path[1]).FirstOrDefault();
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Kills whatever is still in the sandbox's cgroups and removes them.</summary>
    public abstract Task RemoveAsync(string id);

    /// <summary>The <c>cgroup.procs</c> files of the sandbox's cgroups: a process that writes its pid into each is inside its limits.</summary>
    public abstract IReadOnlyList<string> ProcessFiles(string id);

    /// <summary>Whether anything of the sandbox is left on the host.</summary>
    public abstract bool Exists(string id);

    /// <summary>
    /// Freezes every process of the sandbox (the cgroup freezer): returns once none of them runs; they keep their memory and
    /// state. Throws <see cref="InvalidOperationException"/> for a sandbox whose cgroups have no freezer (made before it was
    /// used) and <see cref="TimeoutException"/> when the kernel does not finish within a few seconds (then it is thawed again).
    /// </summary>
    public async Task FreezeAsync(string id, CancellationToken cancellationToken)
    {
        var freezer = FreezerOf(id) ?? throw new InvalidOperationException("the sandbox was made before sandboxes could be paused: recreate it to pause it");
        WriteFreezer(freezer, frozen: true);
        var deadline = DateTime.UtcNow + FreezeTimeout;
        while (!ReadsFrozen(freezer))
        {
            if (DateTime.UtcNow > deadline)
            {
                WriteFreezer(freezer, frozen: false);
                throw new TimeoutException($"the kernel did not freeze the sandbox's processes within {FreezeTimeout.TotalSeconds:0} s");
            }

            await Task.Delay(1, cancellationToken);
        }
    }

    /// <summary>Lets the sandbox's processes run again; nothing to do when they are not frozen.</summary>
    public void Thaw(string id)
    {
        if (FreezerOf(id) is { } freezer)
        {
            WriteFreezer(freezer, frozen: false);
        }
    }

    /// <summary>Whether the sandbox is frozen now (asked again after the agent restarted: the kernel keeps it frozen).</summary>
    public bool IsFrozen(string id) => FreezerOf(id) is { } freezer && ReadsFrozen(freezer);

    private static readonly TimeSpan FreezeTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The directory of the sandbox's cgroup that holds its freezer's files; null when it has none (or is gone).</summary>
    protected abstract string? FreezerOf(string id);

    protected abstract void WriteFreezer(string directory, bool frozen);

    protected abstract bool ReadsFrozen(string directory);

    /// <summary>Whether the kernel killed a process of the sandbox for exceeding its memory.</summary>
    public abstract bool WasOutOfMemory(string id);

    /// <summary>Whether the sandbox tried to start more processes than its limit allows (the kernel refused the fork).</summary>
    public abstract bool HitProcessLimit(string id);

    /// <summary>What the sandbox uses now, from its cgroups' own counters; null once its cgroups are gone.</summary>
    public CgroupUsage? Usage(string id)
    {
        try
        {
            return ReadUsage(id);
        }
        catch (Exception exception) when (exception is FileNotFoundException or DirectoryNotFoundException or FormatException)
        {
            // Removed while being read: the sandbox has just ended.
            return null;
        }
    }

    protected abstract CgroupUsage ReadUsage(string id);

    protected static long ReadNumber(string file)
    {
        var text = File.ReadAllText(file).Trim();
        // v2 writes "max" for no limit.
        return text == "max" ? long.MaxValue : long.Parse(text, System.Globalization.CultureInfo.InvariantCulture);
    }

    protected static long Counter(string file, string counter) =>
        File.ReadAllLines(file).Select(l => l.Split(' ')).Where(p => p.Length == 2 && p[0] == counter)
            .Select(p => long.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture)).FirstOrDefault();

    protected static bool CounterAboveZero(string file, string counter) =>
        File.Exists(file) && File.ReadAllLines(file).Any(l => l.StartsWith(counter + " ", StringComparison.Ordinal) && l != counter + " 0");

    protected static void Write(string directory, string file, string value) => File.WriteAllText(Path.Combine(directory, file), value);

    protected static async Task EmptyAndRemoveAsync(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return;
        }

        for (var attempt = 0; attempt < 100; attempt++)
        {
            var pids = File.ReadAllLines(Path.Combine(directory, "cgroup.procs")).Where(l => l.Length > 0).Select(int.Parse).ToArray();
            if (pids.Length == 0)
            {
                try
                {
                    Directory.Delete(directory);
                    return;
                }
                catch (IOException)
                {
                    // The last process is still leaving; try again shortly.
                }
            }

            foreach (var pid in pids)
            {
                try
                {
                    System.Diagnostics.Process.GetProcessById(pid).Kill();
                }
                catch (Exception exception) when (exception is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
                {
                    // Gone already.
                }
            }

            await Task.Delay(20);
        }

        throw new IOException($"Cannot remove {directory}: processes keep running in it.");
    }
}

internal sealed class CgroupsV1 : Cgroups
{
    /// <summary>cpuacct counts the CPU time the sandbox used; it is mounted apart from cpu on some hosts, with it (cpu,cpuacct) on others.</summary>
    /// <summary>freezer pauses it (<see cref="Cgroups.FreezeAsync"/>).</summary>
    private static readonly string[] Controllers = Directory.Exists(Path.Combine(Root, "cpuacct"))
        ? ["memory", "pids", "cpu", "cpuacct", "devices", "freezer"]
        : ["memory", "pids", "cpu", "devices", "freezer"];

    public override string Version => "v1";

    public override IReadOnlyList<string> Create(string id, SandboxLimits limits, IReadOnlyList<string>? devices = null)
    {
        var directories = Controllers.ToDictionary(c => c, c => Directory.CreateDirectory(Path.Combine(Root, c, Parent, id)).FullName);
        var memory = ((long)limits.MemoryMiB * 1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture);
        Write(directories["memory"], "memory.limit_in_bytes", memory);
        if (File.Exists(Path.Combine(directories["memory"], "memory.memsw.limit_in_bytes")))
        {
            Write(directories["memory"], "memory.memsw.limit_in_bytes", memory);
        }

        Write(directories["pids"], "pids.max", limits.MaxProcesses.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Write(directories["cpu"], "cpu.cfs_period_us", "100000");
        Write(directories["cpu"], "cpu.cfs_quota_us", ((long)(limits.Cpus * 100_000)).ToString(System.Globalization.CultureInfo.InvariantCulture));
        Write(directories["devices"], "devices.deny", "a");
        foreach (var device in devices ?? AllowedDevices)
        {
            Write(directories["devices"], "devices.allow", device);
        }

        return directories.Values.Select(d => Path.Combine(d, "cgroup.procs")).ToArray();
    }

    public override async Task RemoveAsync(string id)
    {
        // A frozen process does not die of SIGKILL until it is thawed.
        Thaw(id);
        foreach (var controller in Controllers)
        {
            await EmptyAndRemoveAsync(Path.Combine(Root, controller, Parent, id));
        }
    }

    public override IReadOnlyList<string> ProcessFiles(string id) => Controllers.Select(c => Path.Combine(Root, c, Parent, id, "cgroup.procs")).ToArray();

    public override bool Exists(string id) => Controllers.Any(c => Directory.Exists(Path.Combine(Root, c, Parent, id)));

    public override bool WasOutOfMemory(string id) => CounterAboveZero(Path.Combine(Root, "memory", Parent, id, "memory.oom_control"), "oom_kill");

    protected override string? FreezerOf(string id) => Directory.Exists(Path.Combine(Root, "freezer", Parent, id)) ? Path.Combine(Root, "freezer", Parent, id) : null;

    protected override void WriteFreezer(string directory, bool frozen) => Write(directory, "freezer.state", frozen ? "FROZEN" : "THAWED");

    protected override bool ReadsFrozen(string directory) => File.ReadAllText(Path.Combine(directory, "freezer.state")).Trim() == "FROZEN";

    public override bool HitProcessLimit(string id) => CounterAboveZero(Path.Combine(Root, "pids", Parent, id, "pids.events"), "max");

    protected override CgroupUsage ReadUsage(string id)
    {
        var memory = Path.Combine(Root, "memory", Parent, id);
        var cpuacct = Path.Combine(Root, "cpuacct", Parent, id, "cpuacct.usage");
        return new CgroupUsage(
            File.Exists(cpuacct) ? ReadNumber(cpuacct) : 0,
            ReadNumber(Path.Combine(memory, "memory.usage_in_bytes")),
            ReadNumber(Path.Combine(memory, "memory.limit_in_bytes")),
            (int)ReadNumber(Path.Combine(Root, "pids", Parent, id, "pids.current")));
    }
}

internal sealed class CgroupsV2 : Cgroups
{
    public override string Version => "v2";

    public override IReadOnlyList<string> Create(string id, SandboxLimits limits, IReadOnlyList<string>? devices = null)
    {
        var parent = Directory.CreateDirectory(Path.Combine(Root, Parent)).FullName;
        Write(Root, "cgroup.subtree_control", "+memory +pids +cpu");
        Write(parent, "cgroup.subtree_control", "+memory +pids +cpu");
        var directory = Directory.CreateDirectory(Path.Combine(parent, id)).FullName;
        Write(directory, "memory.max", ((long)limits.MemoryMiB * 1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture));
        Write(directory, "memory.swap.max", "0");
        Write(directory, "pids.max", limits.MaxProcesses.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Write(directory, "cpu.max", $"{(long)(limits.Cpus * 100_000)} 100000");
        return [Path.Combine(directory, "cgroup.procs")];
    }

    public override Task RemoveAsync(string id)
    {
        Thaw(id);
        return EmptyAndRemoveAsync(Path.Combine(Root, Parent, id));
    }

    public override IReadOnlyList<string> ProcessFiles(string id) => [Path.Combine(Root, Parent, id, "cgroup.procs")];

    public override bool Exists(string id) => Directory.Exists(Path.Combine(Root, Parent, id));

    public override bool WasOutOfMemory(string id) => CounterAboveZero(Path.Combine(Root, Parent, id, "memory.events"), "oom_kill");

    protected override string? FreezerOf(string id) => Directory.Exists(Path.Combine(Root, Parent, id)) ? Path.Combine(Root, Parent, id) : null;

    protected override void WriteFreezer(string directory, bool frozen) => Write(directory, "cgroup.freeze", frozen ? "1" : "0");

    protected override bool ReadsFrozen(string directory) => File.ReadAllLines(Path.Combine(directory, "cgroup.events")).Contains("frozen 1");

    public override bool HitProcessLimit(string id) => CounterAboveZero(Path.Combine(Root, Parent, id, "pids.events"), "max");

    protected override CgroupUsage ReadUsage(string id)
    {
        var directory = Path.Combine(Root, Parent, id);
        return new CgroupUsage(
            Counter(Path.Combine(directory, "cpu.stat"), "usage_usec") * 1000,
            ReadNumber(Path.Combine(directory, "memory.current")),
            ReadNumber(Path.Combine(directory, "memory.max")),
            (int)ReadNumber(Path.Combine(directory, "pids.current")));
    }
}

/// <summary>A sandbox's use of the host: CPU time since it started (ns), memory in use and its limit (bytes), and its processes.</summary>
public sealed record CgroupUsage(long CpuNanoseconds, long MemoryBytes, long MemoryLimitBytes, int Processes);
