using System.Globalization;

namespace Platform.Provisioning.Drivers.MicroVm;

/// <summary>
/// How long a guest may take from QEMU's start to answering its probe, from what this host has shown it can do rather
/// than one constant: an emulated (TCG) boot is many times slower than a KVM one, the first boot on a cold page cache is
/// the slowest of all, and a host whose CPUs are all busy stretches every boot by about how oversubscribed it is. The
/// allowance is there to catch a guest that hangs, so it errs long.
/// </summary>
public sealed class BootAllowance
{
    /// <summary>No boot may take longer than this, however slow the host looks: a hung guest must still fail its launch.</summary>
    public static readonly TimeSpan Ceiling = TimeSpan.FromMinutes(10);

    private const double SlowestBootFactor = 10;
    private readonly Func<double> _loadPerCore;
    private readonly Dictionary<string, TimeSpan> _slowest = [];

    /// <param name="loadPerCore">The host's runnable tasks per core (1-minute load average over cores); read from /proc by default.</param>
    public BootAllowance(Func<double>? loadPerCore = null) => _loadPerCore = loadPerCore ?? ReadLoadPerCore;

    /// <summary>What a boot under <paramref name="accelerator"/> may take now.</summary>
    public TimeSpan For(string accelerator)
    {
        TimeSpan baseline;
        lock (_slowest)
        {
            baseline = _slowest.TryGetValue(accelerator, out var slowest)
                ? Max(Floor(accelerator), slowest * SlowestBootFactor)
                : FirstBoot(accelerator);
        }

        var stretched = baseline * Math.Max(1, _loadPerCore());
        return stretched < Ceiling ? stretched : Ceiling;
    }

    /// <summary>Remembers how long a boot that reached ready took (measured on a host as busy as it was then).</summary>
    public void Observe(string accelerator, TimeSpan took, double loadPerCoreThen)
    {
        // A boot slowed by a busy host says little about this host at rest: count it as it would have been.
        var atRest = took / Math.Max(1, loadPerCoreThen);
        lock (_slowest)
        {
            _slowest[accelerator] = _slowest.TryGetValue(accelerator, out var slowest) ? Max(slowest, atRest) : atRest;
        }
    }

    /// <summary>The load now, to pass to <see cref="Observe"/> at the end of a boot.</summary>
    public double LoadPerCore() => _loadPerCore();

    private static TimeSpan Floor(string accelerator) => accelerator == "kvm" ? TimeSpan.FromSeconds(15) : TimeSpan.FromSeconds(60);

    // A cold page cache (the kernel, the initramfs, QEMU itself read from disk) and a cold TCG translation cache.
    private static TimeSpan FirstBoot(string accelerator) => accelerator == "kvm" ? TimeSpan.FromSeconds(45) : TimeSpan.FromSeconds(180);

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    private static double ReadLoadPerCore()
    {
        try
        {
            var first = File.ReadAllText("/proc/loadavg").Split(' ', 2)[0];
            return double.Parse(first, CultureInfo.InvariantCulture) / Environment.ProcessorCount;
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException or FormatException)
        {
            // No /proc/loadavg (not Linux, or hidden): the allowance of an idle host.
            return 0;
        }
    }
}
