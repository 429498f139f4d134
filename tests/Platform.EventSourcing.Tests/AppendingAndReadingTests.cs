using System.Text.Json;
using Platform.EventSourcing.Tests.Events;

namespace Platform.EventSourcing.Tests;

public sealed class AppendingAndReadingTests
{
    [Fact]
    public async Task A_stream_reads_back_in_order_with_versions_positions_and_metadata()
    {
        await using var fixture = await StoreFixture.CreateAsync();
        var correlation = Guid.CreateVersion7();
        var metadata = new EventMetadata(correlation, TenantId: "tenant-a", Actor: "user:alice");

        var first = await fixture.Store.AppendAsync("counter-1", ExpectedVersion.NoStream, [new CounterOpened("c1")], metadata);
        var second = await fixture.Store.AppendAsync("counter-1", ExpectedVersion.Exactly(1), [new CounterIncremented(2), new CounterIncremented(3)], metadata);

        Assert.Equal(1, first.NextExpectedVersion);
        Assert.Equal(3, second.NextExpectedVersion);
        Assert.Equal(3, second.LastPosition);
        var events = await fixture.Store.ReadStreamAsync("counter-1");
        Assert.Equal([1L, 2L, 3L], events.Select(e => e.StreamVersion));
        Assert.Equal([1L, 2L, 3L], events.Select(e => e.Position));
        Assert.Equal(new CounterOpened("c1"), events[0].Data);
        Assert.Equal(new CounterIncremented(3), events[2].Data);
        Assert.Equal(["CounterOpened", "CounterIncremented", "CounterIncremented"], events.Select(e => e.EventType));
        Assert.All(events, e => Assert.Equal(metadata, e.Metadata));
        Assert.Equal(3, events.Select(e => e.EventId).Distinct().Count());
    }

    [Fact]
    public async Task An_append_that_expects_a_stale_version_is_refused_and_writes_nothing()
    {
        await using var fixture = await StoreFixture.CreateAsync();
        await fixture.Store.AppendAsync("counter-1", ExpectedVersion.NoStream, [new CounterOpened("c1")]);
        await fixture.Store.AppendAsync("counter-1", ExpectedVersion.Exactly(1), [new CounterIncremented(1)]);

        var stale = await Assert.ThrowsAsync<WrongExpectedVersionException>(() =>
            fixture.Store.AppendAsync("counter-1", ExpectedVersion.Exactly(1), [new CounterIncremented(5)]));
        var recreate = await Assert.ThrowsAsync<WrongExpectedVersionException>(() =>
            fixture.Store.AppendAsync("counter-1", ExpectedVersion.NoStream, [new CounterOpened("again")]));
        var missing = await Assert.ThrowsAsync<WrongExpectedVersionException>(() =>
            fixture.Store.AppendAsync("counter-2", ExpectedVersion.Exactly(4), [new CounterIncremented(1)]));

        Assert.Equal(2, stale.ActualVersion);
        Assert.Equal(2, recreate.ActualVersion);
        Assert.Equal(0, missing.ActualVersion);
        Assert.Equal(2, (await fixture.Store.ReadStreamAsync("counter-1")).Count);
        Assert.Equal(2, await fixture.Store.ReadHeadPositionAsync());
        Assert.Equal(0L, await fixture.Schema.ScalarAsync<long>("SELECT count(*) FROM {schema}.mt_streams WHERE id = 'counter-2'"));
    }

    [Fact]
    public async Task Appends_expecting_any_version_never_conflict()
    {
        await using var fixture = await StoreFixture.CreateAsync();

        await Task.WhenAll(Enumerable.Range(0, 20).Select(i =>
            fixture.Store.AppendAsync("shared", ExpectedVersion.Any, [new CounterIncremented(i)])));

        var events = await fixture.Store.ReadStreamAsync("shared");
        Assert.Equal(Enumerable.Range(1, 20).Select(v => (long)v), events.Select(e => e.StreamVersion));
    }

    [Fact]
    public async Task Racing_writers_with_the_same_expected_version_produce_exactly_one_winner()
    {
        await using var fixture = await StoreFixture.CreateAsync();
        await fixture.Store.AppendAsync("counter", ExpectedVersion.NoStream, [new CounterOpened("c")]);

        var attempts = await Task.WhenAll(Enumerable.Range(0, 10).Select(async i =>
        {
            try
            {
                await fixture.Store.AppendAsync("counter", ExpectedVersion.Exactly(1), [new CounterIncremented(i)]);
                return true;
            }
            catch (WrongExpectedVersionException)
            {
                return false;
            }
        }));

        Assert.Single(attempts, won => won);
        Assert.Equal(2, await fixture.Store.ReadStreamVersionAsync("counter"));
    }

    [Fact]
    public async Task A_session_appends_to_several_streams_atomically()
    {
        await using var fixture = await StoreFixture.CreateAsync();
        await fixture.Store.AppendAsync("b", ExpectedVersion.NoStream, [new CounterOpened("b")]);

        await using (var session = await fixture.Store.BeginSessionAsync())
        {
            session.Append("a", ExpectedVersion.NoStream, [new CounterOpened("a")]);
            session.Append("b", ExpectedVersion.NoStream, [new CounterOpened("b-again")]);
            var refused = await Assert.ThrowsAsync<WrongExpectedVersionException>(() => session.CommitAsync());
            Assert.Equal("b", refused.StreamId);
            Assert.Equal(1, refused.ActualVersion);
        }

        Assert.Equal(0, await fixture.Store.ReadStreamVersionAsync("a"));
        Assert.Equal(1, await fixture.Store.ReadHeadPositionAsync());
    }

    [Fact]
    public async Task An_event_whose_type_is_not_mapped_reads_back_as_raw_json()
    {
        await using var fixture = await StoreFixture.CreateAsync();
        await fixture.Store.AppendAsync("counter", ExpectedVersion.Any, [new CounterIncremented(7)]);
        var reader = new EventStore(fixture.Schema.DataSource, new EventStoreOptions { Schema = fixture.Schema.Name });

        var stored = Assert.Single(await reader.ReadAllAsync(0, 10));

        var json = Assert.IsType<JsonElement>(stored.Data);
        Assert.Equal(7, json.GetProperty("by").GetInt32());
        Assert.Equal("CounterIncremented", stored.EventType);
    }

    [Fact]
    public async Task Appending_an_unmapped_event_type_fails_before_writing()
    {
        await using var fixture = await StoreFixture.CreateAsync();

        await Assert.ThrowsAsync<InvalidOperationException>(() =>
            fixture.Store.AppendAsync("x", ExpectedVersion.Any, [new Uri("http://unmapped")]));

        Assert.Equal(0, await fixture.Store.ReadHeadPositionAsync());
    }

    [Fact]
    public async Task An_aggregate_rehydrates_from_its_stream_with_the_version_to_expect()
    {
        await using var fixture = await StoreFixture.CreateAsync();
        await fixture.Store.AppendAsync("counter", ExpectedVersion.NoStream, [new CounterOpened("c"), new CounterIncremented(2), new CounterIncremented(5)]);

        var counter = await fixture.Store.LoadAsync<Counter>("counter", Counter.Evolve);
        var missing = await fixture.Store.LoadAsync<Counter>("nothing", Counter.Evolve);

        Assert.Equal(new Counter("c", 7), counter.State);
        Assert.Equal(3, counter.Version);
        Assert.False(missing.Exists);
        Assert.Null(missing.State);
    }

    [Fact]
    public async Task Migrating_a_schema_twice_and_concurrently_is_harmless()
    {
        await using var fixture = await StoreFixture.CreateAsync();

        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => fixture.Store.MigrateAsync()));

        // The store's own tables, and the one-time move of the former store's events into Marten's.
        Assert.Equal(EventStore.Migrations.Count + 1L, await fixture.Schema.ScalarAsync<long>("SELECT count(*) FROM {schema}.schema_migrations"));
    }

    private sealed record Counter(string Name, int Value)
    {
        public static Counter Evolve(Counter? state, object @event) => @event switch
        {
            CounterOpened opened => new Counter(opened.Name, 0),
            CounterIncremented incremented => state! with { Value = state.Value + incremented.By },
            _ => state!,
        };
    }
}
