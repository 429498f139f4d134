namespace Platform.Testing;

/// <summary>Disposes several resources at once, all of them even when one fails.</summary>
public sealed class DisposeAll(IEnumerable<IAsyncDisposable> resources) : IAsyncDisposable
{
    public async ValueTask DisposeAsync()
    {
        var failures = new List<Exception>();
        foreach (var resource in resources.Reverse())
        {
            try
            {
                await resource.DisposeAsync();
            }
            catch (Exception exception)
            {
                failures.Add(exception);
            }
        }

        if (failures.Count > 0)
        {
            throw new AggregateException(failures);
        }
    }
}
