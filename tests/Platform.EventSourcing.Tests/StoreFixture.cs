using Platform.EventSourcing.Subscriptions;
using Platform.EventSourcing.Tests.Events;
using Platform.Testing;

namespace Platform.EventSourcing.Tests;

/// <summary>An event store in a fresh schema of the test run's PostgreSQL.</summary>
internal sealed class StoreFixture : IAsyncDisposable
{
    private StoreFixture(PostgresSchema schema, EventStore store)
    {
        Schema = schema;
        Store = store;
    }

    public PostgresSchema Schema { get; }

    public EventStore Store { get; }

    public static async Task<StoreFixture> CreateAsync(IReadOnlyList<IProjection>? inline = null, int maxPoolSize = 40)
    {
        var schema = PostgresSchema.Create("es", maxPoolSize);
        var store = new EventStore(schema.DataSource, new EventStoreOptions
        {
            Schema = schema.Name,
            Types = TestEventTypes.Registry(),
            InlineProjections = inline ?? [],
        });
        await store.MigrateAsync();
        return new StoreFixture(schema, store);
    }

    public ValueTask DisposeAsync() => Schema.DisposeAsync();
}
