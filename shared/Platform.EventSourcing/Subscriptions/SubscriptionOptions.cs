namespace Platform.EventSourcing.Subscriptions;

public sealed record SubscriptionOptions
{
    public int BatchSize { get; init; } = 500;

    /// <summary>How long a caught-up subscription waits for a notification before it looks anyway.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How often an instance that does not hold the subscription's lease asks for it again.</summary>
    public TimeSpan LeaseRetryInterval { get; init; } = TimeSpan.FromSeconds(2);

    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromSeconds(30);
}
