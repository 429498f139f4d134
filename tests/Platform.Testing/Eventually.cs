namespace Platform.Testing;

/// <summary>Waits for something asynchronous to become true, failing with a message when it does not in time.</summary>
public static class Eventually
{
    public static async Task TrueAsync(Func<Task<bool>> condition, TimeSpan timeout, string because)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Not true within {timeout.TotalSeconds:0.#} s: {because}");
            }

            await Task.Delay(50);
        }
    }

    public static Task TrueAsync(Func<bool> condition, TimeSpan timeout, string because) =>
        TrueAsync(() => Task.FromResult(condition()), timeout, because);

    /// <summary>Waits until <paramref name="value"/> gives something (not null), and returns it.</summary>
    public static async Task<T> ValueAsync<T>(Func<Task<T?>> value, TimeSpan timeout, string because) where T : struct
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (await value() is { } found)
            {
                return found;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Nothing within {timeout.TotalSeconds:0.#} s: {because}");
            }

            await Task.Delay(100);
        }
    }
}
