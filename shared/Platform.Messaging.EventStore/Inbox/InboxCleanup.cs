using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Platform.EventSourcing;

namespace Platform.Messaging.Inbox;

/// <summary>
/// Forgets inbox rows older than the retention (7 days by default), in batches, once an hour. A message
/// redelivered after its row is gone would run again, so the retention must outlast any redelivery: the
/// broker's, the retry policy's (minutes) and a saga's re-issued commands (handled by machine id anyway).
/// </summary>
public sealed class InboxCleanup(EventStore store, TimeProvider time, TimeSpan retention, ILogger<InboxCleanup> logger) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromHours(1);

    /// <summary>Deletes expired rows; returns how many.</summary>
    public async Task<int> CleanOnceAsync(CancellationToken cancellationToken)
    {
        var cutoff = time.GetUtcNow() - retention;
        var total = 0;
        int deleted;
        do
        {
            await using var command = store.DataSource.CreateCommand(
                $"DELETE FROM {store.Schema}.inbox WHERE ctid IN (SELECT ctid FROM {store.Schema}.inbox WHERE received_at < $1 LIMIT 5000)");
            command.Parameters.Add(new NpgsqlParameter { Value = cutoff });
            deleted = await command.ExecuteNonQueryAsync(cancellationToken);
            total += deleted;
        }
        while (deleted > 0);

        return total;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var deleted = await CleanOnceAsync(stoppingToken);
                if (deleted > 0)
                {
                    logger.LogInformation("Forgot {Count} inbox entries older than {Days} days", deleted, retention.TotalDays);
                }

                await Task.Delay(Interval, time, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (NpgsqlException exception)
            {
                logger.LogWarning("Inbox cleanup failed, retrying later: {Reason}", exception.Message);
                await Task.Delay(TimeSpan.FromMinutes(1), time, stoppingToken);
            }
        }
    }
}
