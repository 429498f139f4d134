namespace Platform.Telemetry.Metrics;

/// <summary>How long each resolution of the metric series is kept, and how often they are rolled up (section <c>Platform:Telemetry:Metrics</c>).</summary>
public sealed class MetricsOptions
{
    public const string Section = "Platform:Telemetry:Metrics";

    /// <summary>The agents' own samples (one per <c>Platform:Agent:MetricsInterval</c>).</summary>
    public TimeSpan RawRetention { get; set; } = TimeSpan.FromHours(24);

    public TimeSpan MinuteRetention { get; set; } = TimeSpan.FromDays(7);

    public TimeSpan HourRetention { get; set; } = TimeSpan.FromDays(90);

    /// <summary>How often new samples are folded into the 1-minute and 1-hour series and expired rows are deleted.</summary>
    public TimeSpan RollupInterval { get; set; } = TimeSpan.FromMinutes(1);
}
