namespace Platform.Telemetry.Webhooks;

/// <summary><c>Platform:Telemetry:Webhooks</c>: what a webhook may point at and how hard delivery tries.</summary>
public sealed class WebhookOptions
{
    public const string Section = "Platform:Telemetry:Webhooks";

    /// <summary>Refuse plain-http URLs.</summary>
    public bool RequireHttps { get; set; } = true;

    /// <summary>Allow URLs that resolve to loopback, private or link-local addresses (off: a webhook cannot reach inside the platform's network).</summary>
    public bool AllowPrivateAddresses { get; set; }

    /// <summary>Attempts per event before it is dead-lettered.</summary>
    public int MaxAttempts { get; set; } = 8;

    /// <summary>The first retry waits this long; each next one twice as long, up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromSeconds(1);

    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromMinutes(5);

    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);

    public TimeSpan Backoff(int attempts) =>
        TimeSpan.FromMilliseconds(Math.Min(MaxBackoff.TotalMilliseconds, InitialBackoff.TotalMilliseconds * Math.Pow(2, Math.Max(0, attempts - 1))));
}
