using Platform.Contracts.Provisioning;
using Platform.Hosting;

namespace Platform.Telemetry.Costs;

/// <summary>What one driver's machines cost per hour: per vCPU, per GiB of memory and per GiB of disk.</summary>
public sealed record Price(decimal VcpuHour, decimal MemoryGiBHour, decimal DiskGiBHour)
{
    public decimal PerHour(MachineShape shape) =>
        Math.Round(shape.Vcpus * VcpuHour + shape.MemoryMiB / 1024m * MemoryGiBHour + shape.DiskMiB / 1024m * DiskGiBHour, 6);
}

/// <summary>
/// The prices machines are charged at, per driver: <c>Platform:Telemetry:Prices:{driver}:{VcpuHour,MemoryGiBHour,DiskGiBHour}</c>
/// and <c>Platform:Telemetry:Prices:Currency</c>, each value defaulting on its own; a driver with no price of its own
/// costs what <c>default</c> does.
/// </summary>
public sealed class PriceTable
{
    public const string Section = "Platform:Telemetry:Prices";
    public const string Fallback = "default";

    /// <summary>The deployment's prices until it sets its own (documented in docs/operations.md).</summary>
    public static IReadOnlyDictionary<string, Price> Defaults { get; } = new Dictionary<string, Price>
    {
        ["microvm"] = new(0.0200m, 0.0025m, 0.0001m),
        ["sandbox"] = new(0.0100m, 0.0020m, 0.0001m),
        ["container"] = new(0.0100m, 0.0020m, 0.0001m),
        ["aws"] = new(0.0400m, 0.0050m, 0.0001m),
        ["gcp"] = new(0.0400m, 0.0050m, 0.0001m),
        ["azure"] = new(0.0400m, 0.0050m, 0.0001m),
        ["simulated"] = new(0m, 0m, 0m),
        [Fallback] = new(0.0200m, 0.0025m, 0.0001m),
    };

    private readonly Dictionary<string, Price> _prices;

    public PriceTable(IConfiguration configuration)
    {
        var section = configuration.GetSection(Section);
        Currency = section["Currency"] ?? "USD";
        var drivers = Defaults.Keys.Concat(section.GetChildren().Select(c => c.Key).Where(k => k != "Currency")).Distinct(StringComparer.OrdinalIgnoreCase);
        _prices = drivers.ToDictionary(d => d, d => ConfigurationRecords.Read(section.GetSection(d), Defaults.GetValueOrDefault(d) ?? Defaults[Fallback]), StringComparer.OrdinalIgnoreCase);
    }

    public string Currency { get; }

    public Price For(string driver) => _prices.GetValueOrDefault(driver) ?? _prices[Fallback];
}
