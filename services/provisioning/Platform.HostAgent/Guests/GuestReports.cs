using System.Text.Json;
using MassTransit;
using Platform.Contracts;
using Platform.Contracts.Provisioning;

namespace Platform.HostAgent.Guests;

/// <summary>
/// The records of what callers did inside machines (<see cref="GuestCommandEnded"/>, <see cref="GuestFileChanged"/>),
/// published at least once: each is written to <c>outbox/</c> in the agent's state directory before it is published,
/// and removed once the bus has taken it. What is left there (the bus was down, or the agent died in between) is
/// published again, on start and every little while. Provisioning records each once: the machine remembers the ids
/// it recorded.
/// </summary>
public sealed class GuestReports(AgentOptions options, IBus bus, TimeProvider time, ILogger<GuestReports> logger) : BackgroundService
{
    /// <summary>How often what is left is tried again; a report younger than this is still its first publisher's.</summary>
    private static readonly TimeSpan RetryInterval = TimeSpan.FromSeconds(10);

    /// <summary>What the outbox holds, by the name its files carry.</summary>
    private static readonly Dictionary<string, Type> Reports = new[] { typeof(GuestCommandEnded), typeof(GuestFileChanged) }.ToDictionary(t => t.Name);

    private readonly string _directory = Directory.CreateDirectory(Path.Combine(options.StatePath, "outbox")).FullName;

    public Task PublishAsync(GuestCommandEnded report) => PublishAsync(report, nameof(GuestCommandEnded));

    public Task PublishAsync(GuestFileChanged report) => PublishAsync(report, nameof(GuestFileChanged));

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await PublishLeftoversAsync(stoppingToken);
                await Task.Delay(RetryInterval, time, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: what is left goes out after the next start.
        }
    }

    /// <summary>
    /// Keeps the report in the outbox and returns: the caller's answer waits for the disk, not for the broker, which
    /// takes it in the background (and, when it cannot, from the outbox later).
    /// </summary>
    private async Task PublishAsync<T>(T report, string type) where T : class
    {
        var file = Path.Combine(_directory, $"{Guid.CreateVersion7():N}.{type}.json");
        await File.WriteAllBytesAsync(file + ".tmp", JsonSerializer.SerializeToUtf8Bytes(report, PlatformJson.Options));
        File.Move(file + ".tmp", file);
        _ = SendAsync(report, type, file);
    }

    private async Task SendAsync<T>(T report, string type, string file) where T : class
    {
        try
        {
            await bus.Publish(report);
            File.Delete(file);
        }
        catch (Exception exception)
        {
            logger.LogWarning(exception, "A {Type} report could not be published now; it is kept and published later", type);
        }
    }

    private async Task PublishLeftoversAsync(CancellationToken cancellationToken)
    {
        var before = time.GetUtcNow().UtcDateTime - RetryInterval;
        // Half-written by an agent that died while writing: never published, so never a report.
        foreach (var torn in Directory.EnumerateFiles(_directory, "*.tmp").Where(f => File.GetLastWriteTimeUtc(f) < before))
        {
            File.Delete(torn);
        }

        foreach (var file in Directory.EnumerateFiles(_directory, "*.json").Order(StringComparer.Ordinal).ToList())
        {
            if (File.GetLastWriteTimeUtc(file) > before)
            {
                continue;
            }

            try
            {
                var report = Reports.TryGetValue(Path.GetFileName(file).Split('.')[1], out var type)
                    ? JsonSerializer.Deserialize(await File.ReadAllBytesAsync(file, cancellationToken), type, PlatformJson.Options)
                    : null;
                if (report is not null)
                {
                    await bus.Publish(report, report.GetType(), cancellationToken);
                }

                File.Delete(file);
            }
            catch (FileNotFoundException)
            {
                // Its first publisher got there meanwhile.
            }
            catch (JsonException exception)
            {
                logger.LogError(exception, "The report {File} cannot be read; it is dropped", file);
                File.Delete(file);
            }
            catch (Exception exception) when (exception is not OperationCanceledException)
            {
                logger.LogWarning(exception, "The report {File} could not be published; it is tried again later", file);
                return;
            }
        }
    }
}
