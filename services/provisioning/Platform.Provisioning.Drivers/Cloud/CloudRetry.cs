namespace Platform.Provisioning.Drivers.Cloud;

/// <summary>
/// How a cloud client waits out throttling: exponential backoff with jitter, as each cloud's guidance asks
/// (AWS "Request throttling", Google "exponential backoff", Azure's 429 with Retry-After), up to a number of attempts.
/// </summary>
public sealed record CloudRetry(int Attempts, TimeSpan BaseDelay, TimeSpan MaxDelay)
{
    public static CloudRetry Default { get; } = new(6, TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(20));

    /// <summary>
    /// Runs <paramref name="send"/> until it does not throw a throttling <see cref="CloudException"/> (as
    /// <paramref name="isThrottling"/> tells), or the attempts are spent, when the last refusal is thrown.
    /// </summary>
    public async Task<T> RunAsync<T>(Func<CancellationToken, Task<T>> send, Func<CloudException, bool> isThrottling, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await send(cancellationToken);
            }
            catch (CloudException refused) when (attempt < Attempts && isThrottling(refused))
            {
                await Task.Delay(DelayBefore(attempt + 1), cancellationToken);
            }
        }
    }

    /// <summary>A random delay up to <c>BaseDelay * 2^(attempt-2)</c>, capped at <see cref="MaxDelay"/>.</summary>
    public TimeSpan DelayBefore(int attempt)
    {
        var ceiling = Math.Min(MaxDelay.TotalMilliseconds, BaseDelay.TotalMilliseconds * Math.Pow(2, attempt - 2));
        return TimeSpan.FromMilliseconds(ceiling / 2 + Random.Shared.NextDouble() * ceiling / 2);
    }
}
