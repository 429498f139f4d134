using MassTransit;
using Platform.Contracts.Provisioning;
using Platform.Contracts.Tenancy;
using Platform.Hosting.Problems;

namespace Platform.Provisioning.Machines;

/// <summary>
/// Asks tenancy, before anything is written, whether a creation fits the tenant's quota now, so that one over it is refused
/// at once (422, <c>quota-exceeded</c>) rather than accepted and then failed at the saga's quota step. It holds nothing:
/// the saga's reservation is what counts, and a creation that races another past this check still fails there. When
/// tenancy does not answer within <see cref="Patience"/> the creation goes on and the reservation decides.
/// </summary>
public sealed class QuotaCheck(IBus bus, ILogger<QuotaCheck> logger) : BackgroundService
{
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(2);

    /// <summary>One client for every check: made once, not per request.</summary>
    private readonly IRequestClient<CheckQuota> _client = bus.CreateRequestClient<CheckQuota>(RequestTimeout.After(s: (int)Patience.TotalSeconds));

    /// <summary>What <paramref name="count"/> machines of <paramref name="shape"/> hold of the quota (what the saga reserves for each).</summary>
    public static QuotaResources Of(MachineShape shape, bool withTunnel, int count = 1) =>
        new(count, shape.Vcpus * count, shape.MemoryMiB * count, shape.DiskMiB * count, withTunnel ? count : 0, 0);

    /// <summary>
    /// One check as the service starts, answered or not: MassTransit declares the queue its answers come back on at the first
    /// request, and a burst of first requests all waiting on that declaration faulted it and stopped the service.
    /// </summary>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await _client.GetResponse<QuotaChecked>(new CheckQuota(Guid.Empty, QuotaResources.None), stoppingToken);
        }
        catch (Exception exception) when (exception is RequestTimeoutException or RequestFaultException or OperationCanceledException)
        {
            // The answer does not matter; the queue it came back on does.
        }
    }

    public async Task EnsureFitsAsync(Guid tenantId, QuotaResources requested, CancellationToken cancellationToken)
    {
        QuotaChecked answer;
        try
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            answer = (await _client.GetResponse<QuotaChecked>(new CheckQuota(tenantId, requested), cancellationToken)).Message;
            if (System.Diagnostics.Stopwatch.GetElapsedTime(started) > TimeSpan.FromMilliseconds(500))
            {
                logger.LogWarning("A quota check took {Milliseconds:0} ms", System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
        }
        catch (RequestTimeoutException)
        {
            logger.LogWarning("Tenancy did not answer a quota check within {Patience}: the creation goes on, and its reservation decides", Patience);
            return;
        }

        if (!answer.Fits)
        {
            throw new ProblemException(ProblemTypes.QuotaExceeded, StatusCodes.Status422UnprocessableEntity, "The tenant's quota does not allow this; nothing was created.",
                $"the tenant's {answer.Limit} quota would be {answer.Used + answer.Requested} of {answer.Max}",
                new Dictionary<string, object?> { ["limit"] = answer.Limit, ["used"] = answer.Used, ["requested"] = answer.Requested, ["max"] = answer.Max });
        }
    }
}
