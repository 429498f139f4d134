using Platform.EventSourcing.Subscriptions;
using Platform.EventSourcing.Tests.Events;
using Platform.Testing;

namespace Platform.EventSourcing.Tests;

/// <summary>A database written by the store before Marten starts on Marten with its history, positions and checkpoints intact.</summary>
public sealed class FormerStoreTests
{
    [Fact]
    public async Task The_events_of_the_store_before_Marten_move_into_Martens_tables_with_their_positions_versions_and_metadata()
    {
        await using var schema = PostgresSchema.Create("esformer");
        await schema.ExecuteAsync("""
            CREATE SCHEMA {schema};
            CREATE TABLE {schema}.schema_migrations (component text NOT NULL, version int NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (component, version));
            INSERT INTO {schema}.schema_migrations (component, version) VALUES ('event-store', 1), ('event-store', 2);
            CREATE TABLE {schema}.streams (stream_id text PRIMARY KEY, version bigint NOT NULL, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
            CREATE TABLE {schema}.global_position (id int PRIMARY KEY CHECK (id = 1), last bigint NOT NULL);
            INSERT INTO {schema}.global_position VALUES (1, 3);
            CREATE TABLE {schema}.events (
                position bigint PRIMARY KEY, stream_id text NOT NULL, stream_version bigint NOT NULL, event_id uuid NOT NULL UNIQUE,
                event_type text NOT NULL, data jsonb NOT NULL, metadata jsonb NOT NULL, recorded_at timestamptz NOT NULL, UNIQUE (stream_id, stream_version));
            CREATE TABLE {schema}.checkpoints (name text PRIMARY KEY, position bigint NOT NULL, updated_at timestamptz NOT NULL);
            INSERT INTO {schema}.checkpoints VALUES ('collector', 2, now());
            INSERT INTO {schema}.streams VALUES ('counter', 2, now(), now()), ('other', 1, now(), now());
            INSERT INTO {schema}.events VALUES
                (1, 'counter', 1, '01a20000-0000-7000-8000-000000000001', 'CounterOpened', '{"name": "c"}', '{"actor": "user:ada", "tenantId": "t-1"}', '2026-11-01T10:00:00Z'),
                (2, 'other', 1, '01a20000-0000-7000-8000-000000000002', 'CounterOpened', '{"name": "o"}', '{}', '2026-11-01T10:00:01Z'),
                (3, 'counter', 2, '01a20000-0000-7000-8000-000000000003', 'CounterIncremented', '{"by": 5}', '{"correlationId": "01a20000-0000-7000-8000-0000000000cc"}', '2026-11-01T10:00:02Z');
            """);
        var store = new EventStore(schema.DataSource, new EventStoreOptions { Schema = schema.Name, Types = TestEventTypes.Registry() });

        await store.MigrateAsync();
        await store.MigrateAsync();

        var counter = await store.ReadStreamAsync("counter");
        Assert.Equal([1L, 3L], counter.Select(e => e.Position));
        Assert.Equal([1L, 2L], counter.Select(e => e.StreamVersion));
        Assert.Equal(new CounterIncremented(5), counter[1].Data);
        Assert.Equal(("user:ada", "t-1"), (counter[0].Metadata.Actor, counter[0].Metadata.TenantId));
        Assert.Equal(Guid.Parse("01a20000-0000-7000-8000-0000000000cc"), counter[1].Metadata.CorrelationId);
        Assert.Equal(DateTimeOffset.Parse("2026-11-01T10:00:02Z"), counter[1].RecordedAt);

        // New appends go on after the moved history, and a checkpoint taken before the move resumes where it was.
        Assert.Equal(3, (await store.AppendAsync("counter", ExpectedVersion.Exactly(2), [new CounterIncremented(1)])).NextExpectedVersion);
        var collector = new Collector("collector");
        await CatchUpSubscription.ForSubscriber(store, collector).CatchUpAsync();
        Assert.Equal([3L, 4L], collector.Events.Select(e => e.Position));
        Assert.Equal(0L, await schema.ScalarAsync<long>("SELECT count(*) FROM pg_tables WHERE schemaname = '{schema}' AND tablename IN ('events', 'streams', 'global_position')"));
    }
}
