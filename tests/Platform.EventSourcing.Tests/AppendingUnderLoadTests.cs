using Npgsql;
using Platform.EventSourcing.Subscriptions;
using Platform.EventSourcing.Tests.Events;
using Platform.Testing;

namespace Platform.EventSourcing.Tests;

/// <summary>What appends do with the connection pool when many wait for the global order or lose a race.</summary>
public sealed class AppendingUnderLoadTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task An_append_refused_for_its_version_needs_no_second_connection(bool inlineProjection)
    {
        await using var fixture = await StoreFixture.CreateAsync();
        await fixture.Store.AppendAsync("counter-1", ExpectedVersion.NoStream, [new CounterOpened("c1")]);
        await using var pool = SmallPool($"es-refused-{Guid.NewGuid():N}"[..24], maxPoolSize: 1);
        var store = new EventStore(pool, new EventStoreOptions
        {
            Schema = fixture.Schema.Name,
            Types = TestEventTypes.Registry(),
            InlineProjections = inlineProjection ? [new NothingProjection()] : [],
        });

        var refused = await Assert.ThrowsAsync<WrongExpectedVersionException>(() =>
            store.AppendAsync("counter-1", ExpectedVersion.NoStream, [new CounterOpened("again")]));

        Assert.Equal(1, refused.ActualVersion);
        Assert.Equal(2, (await store.AppendAsync("counter-1", ExpectedVersion.Exactly(1), [new CounterIncremented(1)])).NextExpectedVersion);
    }

    /// <summary>A pool that answers "exhausted" after two seconds rather than fifteen, named so its backends can be counted.</summary>
    private static NpgsqlDataSource SmallPool(string application, int maxPoolSize) =>
        NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(TestEnvironment.Postgres)
        {
            MaxPoolSize = maxPoolSize,
            Timeout = 2,
            ApplicationName = application,
        }.ConnectionString);

    private sealed class NothingProjection : IProjection
    {
        public string Name => "nothing";

        public Task ApplyAsync(IReadOnlyList<StoredEvent> events, NpgsqlTransaction transaction, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task ResetAsync(NpgsqlTransaction transaction, CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
