using Platform.EventSourcing;
using Platform.Testing;

namespace Platform.Messaging.Tests;

public sealed class InboxTests
{
    [Fact]
    public async Task A_message_delivered_many_times_at_once_is_handled_exactly_once()
    {
        await using var schema = PostgresSchema.Create("inbox");
        var store = new EventStore(schema.DataSource, new EventStoreOptions { Schema = schema.Name, Types = new EventTypeRegistry().Map<Handled>("Handled") });
        await store.MigrateAsync();
        await SchemaMigrator.ApplyAsync(schema.DataSource, schema.Name, Inbox.Inbox.Migrations);
        var inbox = new Inbox.Inbox(store);
        var messageId = Guid.CreateVersion7();

        var outcomes = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => inbox.HandleOnceAsync("consumer", messageId, session =>
        {
            session.Append("handled", ExpectedVersion.Any, [new Handled(messageId)]);
            return Task.Delay(20);
        })));

        Assert.Single(outcomes, handled => handled);
        Assert.Single(await store.ReadStreamAsync("handled"));
    }

    [Fact]
    public async Task A_handler_that_fails_leaves_no_inbox_row_so_the_redelivery_runs_it_again()
    {
        await using var schema = PostgresSchema.Create("inbox");
        var store = new EventStore(schema.DataSource, new EventStoreOptions { Schema = schema.Name, Types = new EventTypeRegistry().Map<Handled>("Handled") });
        await store.MigrateAsync();
        await SchemaMigrator.ApplyAsync(schema.DataSource, schema.Name, Inbox.Inbox.Migrations);
        var inbox = new Inbox.Inbox(store);
        var messageId = Guid.CreateVersion7();

        await Assert.ThrowsAsync<InvalidOperationException>(() => inbox.HandleOnceAsync("consumer", messageId, session =>
        {
            session.Append("handled", ExpectedVersion.Any, [new Handled(messageId)]);
            throw new InvalidOperationException("crash mid-handler");
        }));
        var second = await inbox.HandleOnceAsync("consumer", messageId, session =>
        {
            session.Append("handled", ExpectedVersion.Any, [new Handled(messageId)]);
            return Task.CompletedTask;
        });
        var otherConsumer = await inbox.HandleOnceAsync("another-consumer", messageId, _ => Task.CompletedTask);

        Assert.True(second);
        Assert.True(otherConsumer);
        Assert.Single(await store.ReadStreamAsync("handled"));
    }

    [Fact]
    public async Task Inbox_entries_older_than_the_retention_are_forgotten_and_newer_ones_kept()
    {
        await using var schema = PostgresSchema.Create("inbox");
        var store = new EventStore(schema.DataSource, new EventStoreOptions { Schema = schema.Name });
        await store.MigrateAsync();
        await SchemaMigrator.ApplyAsync(schema.DataSource, schema.Name, Inbox.Inbox.Migrations);
        await schema.ScalarAsync<int>("""
            WITH rows AS (
                INSERT INTO {schema}.inbox (consumer, message_id, received_at)
                SELECT 'c', gen_random_uuid(), now() - make_interval(days => d) - interval '1 hour' FROM generate_series(1, 12) AS d
                RETURNING 1
            ) SELECT count(*)::int FROM rows
            """);
        var cleanup = new Inbox.InboxCleanup(store, TimeProvider.System, TimeSpan.FromDays(7), Microsoft.Extensions.Logging.Abstractions.NullLogger<Inbox.InboxCleanup>.Instance);

        var forgotten = await cleanup.CleanOnceAsync(CancellationToken.None);

        Assert.Equal(6, forgotten);
        Assert.Equal(6L, await schema.ScalarAsync<long>("SELECT count(*) FROM {schema}.inbox"));
        Assert.Equal(0L, await schema.ScalarAsync<long>("SELECT count(*) FROM {schema}.inbox WHERE received_at < now() - interval '7 days'"));
    }

    public sealed record Handled(Guid MessageId);
}
