using MassTransit;

namespace Platform.Messaging;

/// <summary>
/// One retry policy for every endpoint. The broker here has no delayed-message plugin, so redelivery is
/// not scheduled through the broker: a failing message is retried in process with growing delays while
/// it stays unacknowledged (a crash hands it back to the queue), then moves to the endpoint's _error queue.
/// </summary>
public static class RetryPolicy
{
    public static void Configure(IRetryConfigurator retry)
    {
        retry.Intervals(
            TimeSpan.Zero,
            TimeSpan.FromMilliseconds(50),
            TimeSpan.FromMilliseconds(200),
            TimeSpan.FromSeconds(1),
            TimeSpan.FromSeconds(5),
            TimeSpan.FromSeconds(15));
        retry.Ignore<ArgumentException>();
        retry.Ignore<FormatException>();
    }

    /// <summary>
    /// Inside the general policy: a saga that changed since it was read is retried at once on fresh state, many
    /// times, so racing messages for one saga all land. (A stream's lost race is decided again by the store's
    /// decide-and-append primitive, EventStreamDecisions, not by the bus.)
    /// </summary>
    public static void ConfigureConcurrency(IRetryConfigurator retry)
    {
        retry.Handle<ConcurrencyException>();
        retry.Incremental(20, TimeSpan.Zero, TimeSpan.FromMilliseconds(5));
    }
}
