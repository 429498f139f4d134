using MassTransit;
using Npgsql;
using Platform.EventSourcing;

namespace Platform.Messaging.Inbox;

/// <summary>
/// Drops redelivered messages: a handler runs at most once per (consumer, message id), because the inbox
/// row commits in the same transaction as everything the handler writes and appends.
/// </summary>
public sealed class Inbox(EventStore store)
{
    public static IReadOnlyList<SchemaMigration> Migrations { get; } =
    [
        new("inbox", 1, """
            CREATE TABLE {schema}.inbox (
                consumer text NOT NULL,
                message_id uuid NOT NULL,
                received_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (consumer, message_id)
            );
            CREATE INDEX ON {schema}.inbox (received_at);
            """),
    ];

    /// <summary>Runs <paramref name="handle"/> in a session and commits it with the inbox row; returns false, doing nothing, for a message already handled.</summary>
    public async Task<bool> HandleOnceAsync(string consumer, Guid messageId, Func<EventStoreSession, Task> handle, CancellationToken cancellationToken = default)
    {
        await using var session = await store.BeginSessionAsync(cancellationToken);
        await using (var claim = new NpgsqlCommand(
            $"INSERT INTO {store.Schema}.inbox (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            session.Connection,
            session.Transaction)
        {
            Parameters = { new() { Value = consumer }, new() { Value = messageId } },
        })
        {
            // A concurrent delivery of the same message waits here until the first one commits or rolls back.
            if (await claim.ExecuteNonQueryAsync(cancellationToken) == 0)
            {
                return false;
            }
        }

        await handle(session);
        await session.CommitAsync(cancellationToken);
        return true;
    }

    public Task<bool> HandleOnceAsync<TMessage>(ConsumeContext<TMessage> context, string consumer, Func<EventStoreSession, Task> handle)
        where TMessage : class =>
        HandleOnceAsync(
            consumer,
            context.MessageId ?? throw new InvalidOperationException($"A {typeof(TMessage).Name} arrived without a message id; the inbox cannot de-duplicate it."),
            handle,
            context.CancellationToken);
}
