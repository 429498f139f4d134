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
        await SchemaMigrator.ApplyAsync(schema.DataSource, schema.Name, [.. EventStore.Migrations, .. Inbox.Inbox.Migrations]);
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
        await SchemaMigrator.ApplyAsync(schema.DataSource, schema.Name, [.. EventStore.Migrations, .. Inbox.Inbox.Migrations]);
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

    public sealed record Handled(Guid MessageId);
}
