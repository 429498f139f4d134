using Npgsql;
using Platform.EventSourcing.Subscriptions;
using Platform.EventSourcing.Tests.Events;
using Platform.Testing;

namespace Platform.EventSourcing.Tests;

/// <summary>What appends do with the connection pool when many wait for the global order or lose a race.</summary>
public sealed class AppendingUnderLoadTests
{
    [Fact]
    public async Task Appends_queued_behind_the_global_order_wait_without_a_connection_and_leave_the_pool_to_readers()
    {
        await using var fixture = await StoreFixture.CreateAsync();
        var application = $"es-queue-{Guid.NewGuid():N}"[..24];
        await using var pool = SmallPool(application, maxPoolSize: 10);
        var store = new EventStore(pool, new EventStoreOptions { Schema = fixture.Schema.Name, Types = TestEventTypes.Registry(), MaxConcurrentAppends = 4 });

        // Another process holds the store's append order: every append of this one queues behind it.
        await using var holder = await fixture.Schema.DataSource.OpenConnectionAsync();
        await using var held = await holder.BeginTransactionAsync();
        await held.ExecuteAsync("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", CancellationToken.None, EventStore.AppendOrderLockName(fixture.Schema.Name));
        var appends = Enumerable.Range(0, 50).Select(i => store.AppendAsync($"counter-{i}", ExpectedVersion.NoStream, [new CounterOpened($"c{i}")])).ToArray();
        await Eventually.TrueAsync(async () => await WaitingForLocksAsync(fixture, application) >= 4, TimeSpan.FromSeconds(30), "appends wait for the append order");

        // Ten connections, four of them waiting: a reader is served at once, not after the pool's timeout.
        Assert.Equal(0, await store.ReadHeadPositionAsync());
        Assert.Equal(4, await WaitingForLocksAsync(fixture, application));
        Assert.All(appends, append => Assert.False(append.IsCompleted));

        await held.RollbackAsync();
        var results = await Task.WhenAll(appends);
        Assert.Equal(Enumerable.Range(1, 50).Select(p => (long)p), results.Select(r => r.LastPosition).Order());
    }

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

    private static async Task<long> WaitingForLocksAsync(StoreFixture fixture, string application)
    {
        await using var command = fixture.Schema.DataSource.CreateCommand(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'");
        command.Parameters.AddWithValue(application);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private sealed class NothingProjection : IProjection
    {
        public string Name => "nothing";

        public Task ApplyAsync(IReadOnlyList<StoredEvent> events, NpgsqlTransaction transaction, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task ResetAsync(NpgsqlTransaction transaction, CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
