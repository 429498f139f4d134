using Platform.EventSourcing.Subscriptions;
using Platform.EventSourcing.Tests.Events;
using Platform.Testing;

namespace Platform.EventSourcing.Tests;

public sealed class SubscriptionTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_tailing_subscription_sees_every_event_of_concurrent_writers_exactly_once_in_position_order()
    {
        const int writers = 8;
        const int eventsPerWriter = 5_000;
        await using var fixture = await StoreFixture.CreateAsync(maxPoolSize: 30);
        var collector = new Collector();
        var subscription = CatchUpSubscription.ForSubscriber(fixture.Store, collector, new SubscriptionOptions { BatchSize = 700 });
        using var stop = new CancellationTokenSource();
        var tailing = subscription.RunAsync(stop.Token);

        await Task.WhenAll(Enumerable.Range(0, writers).Select(writer => Task.Run(async () =>
        {
            var random = new Random(writer);
            var sequence = 0;
            while (sequence < eventsPerWriter)
            {
                // Small batches of varying size keep many transactions racing for the global order.
                var batch = Enumerable.Range(0, Math.Min(random.Next(1, 8), eventsPerWriter - sequence))
                    .Select(_ => (object)new Written(writer, sequence++))
                    .ToArray();
                var stream = random.Next(4) == 0 ? "shared" : $"writer-{writer}";
                await fixture.Store.AppendAsync(stream, ExpectedVersion.Any, batch);
            }
        })));
        await Eventually.TrueAsync(() => collector.Count >= writers * eventsPerWriter, Patience, "the subscription catches up with every writer");
        await Task.Delay(300);
        await stop.CancelAsync();
        await tailing;

        var seen = collector.Events;
        Assert.Equal(writers * eventsPerWriter, seen.Count);
        Assert.Equal(Enumerable.Range(1, writers * eventsPerWriter).Select(p => (long)p), seen.Select(e => e.Position));
        var written = seen.Select(e => (Written)e.Data).ToArray();
        Assert.Equal(writers * eventsPerWriter, written.Distinct().Count());
        foreach (var perWriter in written.GroupBy(w => w.Writer))
        {
            Assert.Equal(Enumerable.Range(0, eventsPerWriter), perWriter.Select(w => w.Sequence));
        }
    }

    [Fact]
    public async Task A_subscription_resumes_from_its_durable_checkpoint_after_a_restart()
    {
        await using var fixture = await StoreFixture.CreateAsync();
        await AppendIncrementsAsync(fixture.Store, "counter", 30);
        var first = new Collector("resumable");
        await CatchUpSubscription.ForSubscriber(fixture.Store, first).CatchUpAsync();
        await AppendIncrementsAsync(fixture.Store, "counter", 12);

        var second = new Collector("resumable");
        var position = await CatchUpSubscription.ForSubscriber(fixture.Store, second).CatchUpAsync();

        Assert.Equal(30, first.Count);
        Assert.Equal(Enumerable.Range(31, 12).Select(p => (long)p), second.Events.Select(e => e.Position));
        Assert.Equal(42, position);
    }

    [Fact]
    public async Task A_caught_up_subscription_is_woken_by_a_notification_long_before_its_poll_interval()
    {
        await using var fixture = await StoreFixture.CreateAsync();
        var collector = new Collector();
        var subscription = CatchUpSubscription.ForSubscriber(fixture.Store, collector, new SubscriptionOptions { PollInterval = TimeSpan.FromMinutes(5) });
        using var stop = new CancellationTokenSource();
        var running = subscription.RunAsync(stop.Token);
        await AppendIncrementsAsync(fixture.Store, "counter", 1);
        await Eventually.TrueAsync(() => collector.Count == 1, TimeSpan.FromSeconds(20), "the first event arrives");

        await AppendIncrementsAsync(fixture.Store, "counter", 1);

        await Eventually.TrueAsync(() => collector.Count == 2, TimeSpan.FromSeconds(20), "the notification wakes the subscription");
        await stop.CancelAsync();
        await running;
    }

    [Fact]
    public async Task Only_one_instance_runs_a_subscription_and_another_takes_over_when_it_stops()
    {
        await using var fixture = await StoreFixture.CreateAsync();
        var options = new SubscriptionOptions { LeaseRetryInterval = TimeSpan.FromMilliseconds(100), PollInterval = TimeSpan.FromMilliseconds(200) };
        var firstCollector = new Collector("leased");
        var secondCollector = new Collector("leased");
        using var stopFirst = new CancellationTokenSource();
        using var stopSecond = new CancellationTokenSource();
        var first = CatchUpSubscription.ForSubscriber(fixture.Store, firstCollector, options).RunAsync(stopFirst.Token);
        await AppendIncrementsAsync(fixture.Store, "counter", 5);
        await Eventually.TrueAsync(() => firstCollector.Count == 5, Patience, "the first instance takes the lease and delivers");
        var second = CatchUpSubscription.ForSubscriber(fixture.Store, secondCollector, options).RunAsync(stopSecond.Token);
        await AppendIncrementsAsync(fixture.Store, "counter", 5);
        await Eventually.TrueAsync(() => firstCollector.Count == 10, Patience, "the lease holder keeps delivering");
        Assert.Equal(0, secondCollector.Count);

        await stopFirst.CancelAsync();
        await first;
        await AppendIncrementsAsync(fixture.Store, "counter", 5);

        await Eventually.TrueAsync(() => secondCollector.Count == 5, Patience, "the second instance takes over from the checkpoint");
        Assert.Equal(Enumerable.Range(11, 5).Select(p => (long)p), secondCollector.Events.Select(e => e.Position));
        await stopSecond.CancelAsync();
        await second;
    }

    [Fact]
    public async Task A_projection_rebuilt_from_position_zero_equals_the_live_one()
    {
        await using var fixture = await StoreFixture.CreateAsync();
        await SchemaMigrator.ApplyAsync(fixture.Schema.DataSource, fixture.Schema.Name, [CounterTotals.Migration(fixture.Schema.Name)]);
        var projection = new CounterTotals(fixture.Schema.Name);
        for (var i = 0; i < 20; i++)
        {
            await AppendIncrementsAsync(fixture.Store, $"counter-{i % 3}", i + 1);
        }

        await CatchUpSubscription.ForProjection(fixture.Store, projection).CatchUpAsync();
        var live = await CounterTotals.ReadAsync(fixture.Schema.DataSource, fixture.Schema.Name);
        await CatchUpSubscription.ResetAsync(fixture.Store, projection);
        Assert.Empty(await CounterTotals.ReadAsync(fixture.Schema.DataSource, fixture.Schema.Name));

        var rebuilt = CatchUpSubscription.ForProjection(fixture.Store, projection, new SubscriptionOptions { BatchSize = 7 });
        await rebuilt.CatchUpAsync();

        Assert.Equal(live, await CounterTotals.ReadAsync(fixture.Schema.DataSource, fixture.Schema.Name));
        Assert.Equal(3, live.Count);
        Assert.Equal(Enumerable.Range(1, 20).Sum(), live.Values.Sum());
    }

    [Fact]
    public async Task An_inline_projection_commits_with_the_append_and_a_failing_one_rolls_the_append_back()
    {
        var schemaName = "";
        await using var healthy = await StoreFixture.CreateAsync();
        schemaName = healthy.Schema.Name;
        await SchemaMigrator.ApplyAsync(healthy.Schema.DataSource, schemaName, [CounterTotals.Migration(schemaName)]);
        var withInline = new EventStore(healthy.Schema.DataSource, new EventStoreOptions
        {
            Schema = schemaName,
            Types = TestEventTypes.Registry(),
            InlineProjections = [new CounterTotals(schemaName)],
        });
        var withFailingInline = new EventStore(healthy.Schema.DataSource, new EventStoreOptions
        {
            Schema = schemaName,
            Types = TestEventTypes.Registry(),
            InlineProjections = [new CounterTotals(schemaName, failing: true)],
        });

        await withInline.AppendAsync("counter", ExpectedVersion.Any, [new CounterIncremented(4)]);
        await Assert.ThrowsAsync<InvalidOperationException>(() => withFailingInline.AppendAsync("counter", ExpectedVersion.Any, [new CounterIncremented(100)]));

        Assert.Equal(new Dictionary<string, int> { ["counter"] = 4 }, await CounterTotals.ReadAsync(healthy.Schema.DataSource, schemaName));
        Assert.Equal(1, await withInline.ReadHeadPositionAsync());
    }

    private static async Task AppendIncrementsAsync(EventStore store, string stream, int count)
    {
        for (var i = 0; i < count; i++)
        {
            await store.AppendAsync(stream, ExpectedVersion.Any, [new CounterIncremented(1)]);
        }
    }
}
