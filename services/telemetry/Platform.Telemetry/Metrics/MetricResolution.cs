namespace Platform.Telemetry.Metrics;

/// <summary>A series' bucket width: the agents' samples as they came (<c>raw</c>), or their 1-minute or 1-hour rollups.</summary>
public sealed record MetricResolution(string Name, int Seconds)
{
    public static MetricResolution Raw { get; } = new("raw", 0);

    public static MetricResolution Minute { get; } = new("1m", 60);

    public static MetricResolution Hour { get; } = new("1h", 3600);

    /// <summary>
    /// The finest series that can answer <paramref name="step"/> from <paramref name="from"/> on: one no finer than the
    /// step, and coarser still when the finer one has expired at <paramref name="from"/>.
    /// </summary>
    public static MetricResolution For(TimeSpan step, DateTimeOffset from, DateTimeOffset now, MetricsOptions options)
    {
        if (step >= TimeSpan.FromHours(1) || from < now - options.MinuteRetention)
        {
            return Hour;
        }

        return step >= TimeSpan.FromMinutes(1) || from < now - options.RawRetention ? Minute : Raw;
    }
}
