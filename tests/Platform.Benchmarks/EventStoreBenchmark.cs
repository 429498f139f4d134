using System.Diagnostics;
using Npgsql;
using Platform.EventSourcing;
using Platform.EventSourcing.Subscriptions;

namespace Platform.Benchmarks;

/// <summary>
/// Append and replay throughput of the event store on the bench instance's PostgreSQL (durable settings:
/// fsync and synchronous commit on, as in production).
/// </summary>
internal static class EventStoreBenchmark
{
    private const int SingleWriters = 8;
    private const int SingleEventsPerWriter = 1_000;
    private const int BatchWriters = 4;
    private const int BatchSize = 500;
    private const int BatchesPerWriter = 100;

    public static async Task RunAsync(string[] args)
    {
        var schema = "bench_" + Guid.NewGuid().ToString("N")[..8];
        await using var dataSource = NpgsqlDataSource.Create(Benchmarks.Required("PLATFORM_BENCH_POSTGRES"));
        var store = new EventStore(dataSource, new EventStoreOptions
        {
            Schema = schema,
            Types = new EventTypeRegistry().Map<SampleRecorded>("SampleRecorded"),
        });
        await store.MigrateAsync();
        try
        {
            await WarmUpAsync(store);
            Benchmarks.Report("append_single_events_per_s", await AppendSingleAsync(store));
            Benchmarks.Report("append_batched_events_per_s", await AppendBatchedAsync(store));
            Benchmarks.Report("replay_events_per_s", await ReplayAsync(store));
        }
        finally
        {
            await using var drop = dataSource.CreateCommand($"DROP SCHEMA {schema} CASCADE");
            await drop.ExecuteNonQueryAsync();
        }
    }

    private static async Task WarmUpAsync(EventStore store)
    {
        for (var i = 0; i < 200; i++)
        {
            await store.AppendAsync("warm-up", ExpectedVersion.Any, [Sample(i)]);
        }
    }

    /// <summary>Many writers, one event per transaction: the cost of ordering every commit.</summary>
    private static async Task<double> AppendSingleAsync(EventStore store)
    {
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, SingleWriters).Select(writer => Task.Run(async () =>
        {
            for (var i = 0; i < SingleEventsPerWriter; i++)
            {
                await store.AppendAsync($"single-{writer}-{i % 50}", ExpectedVersion.Any, [Sample(i)]);
            }
        })));
        return SingleWriters * SingleEventsPerWriter / clock.Elapsed.TotalSeconds;
    }

    private static async Task<double> AppendBatchedAsync(EventStore store)
    {
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, BatchWriters).Select(writer => Task.Run(async () =>
        {
            for (var batch = 0; batch < BatchesPerWriter; batch++)
            {
                var events = Enumerable.Range(0, BatchSize).Select(i => (object)Sample(i)).ToArray();
                await store.AppendAsync($"batched-{writer}-{batch}", ExpectedVersion.NoStream, events);
            }
        })));
        return BatchWriters * BatchesPerWriter * BatchSize / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Every event from position 0 through a projection, checkpointed per batch as a rebuild does.</summary>
    private static async Task<double> ReplayAsync(EventStore store)
    {
        var projection = new Tally();
        var subscription = CatchUpSubscription.ForProjection(store, projection, new SubscriptionOptions { BatchSize = 5_000 });
        var clock = Stopwatch.StartNew();
        await subscription.CatchUpAsync();
        return projection.Events / clock.Elapsed.TotalSeconds;
    }

    private static SampleRecorded Sample(int i) => new(Guid.CreateVersion7(), "cpu", i * 0.5, DateTimeOffset.UtcNow);

    private sealed class Tally : IProjection
    {
        private readonly Dictionary<string, double> _totals = [];

        public long Events { get; private set; }

        public string Name => "tally";

        public Task ApplyAsync(IReadOnlyList<StoredEvent> events, NpgsqlTransaction transaction, CancellationToken cancellationToken)
        {
            foreach (var stored in events)
            {
                var sample = (SampleRecorded)stored.Data;
                _totals[stored.StreamId] = _totals.GetValueOrDefault(stored.StreamId) + sample.Value;
                Events++;
            }

            return Task.CompletedTask;
        }

        public Task ResetAsync(NpgsqlTransaction transaction, CancellationToken cancellationToken)
        {
            _totals.Clear();
            Events = 0;
            return Task.CompletedTask;
        }
    }
}

public sealed record SampleRecorded(Guid MachineId, string Metric, double Value, DateTimeOffset At);
