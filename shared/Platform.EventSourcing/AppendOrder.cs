using System.Data.Common;
using NpgsqlTypes;
using Weasel.Core;
using Weasel.Storage;
using ICommandBuilder = Weasel.Postgresql.ICommandBuilder;
using IStorageOperation = Marten.Internal.Operations.IStorageOperation;

namespace Platform.EventSourcing;

/// <summary>
/// The first statement of every append's batch, before Marten draws sequence numbers; its locks are held to commit.
/// <list type="bullet">
/// <item>The store's append-order lock, shared: appends run side by side, and a reader that takes it exclusively
/// (<see cref="EventStore.ReadAllAsync(long, int, CancellationToken)"/>) waits until every append that could hold a position
/// below the sequence's last value has ended, so that it never passes over an event that commits late.</item>
/// <item>One exclusive lock per stream appended to, in a fixed order: appends to one stream take their positions in the
/// order of their versions, and one expecting any version never collides with another on the version.</item>
/// </list>
/// It also notifies the store's channel, which PostgreSQL delivers at commit.
/// </summary>
internal sealed class AppendOrder(string schema, string channel, IReadOnlyList<string> streams) : IStorageOperation
{
    public static string LockName(string schema) => "platform-append-order:" + schema;

    public static string StreamLockPrefix(string schema) => "platform-stream:" + schema + ":";

    // Marten runs the operations of this type first, in the order queued: queued before the events, this one leads them.
    public Type DocumentType => typeof(JasperFx.Events.IEvent);

    public void ConfigureCommand(ICommandBuilder builder, IStorageSession session)
    {
        builder.Append("SELECT pg_advisory_xact_lock_shared(hashtextextended(");
        builder.AppendParameter(LockName(schema));
        builder.Append(", 0)), (SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT hashtextextended(");
        builder.AppendParameter(StreamLockPrefix(schema));
        builder.Append(" || s, 0) AS k FROM unnest(");
        var names = builder.AppendParameter(streams.ToArray());
        names.NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text;
        builder.Append(") AS s ORDER BY 1) AS ordered), pg_notify(");
        builder.AppendParameter(channel);
        builder.Append(", '')");
    }

    public Task PostprocessAsync(DbDataReader reader, IList<Exception> exceptions, CancellationToken token) => Task.CompletedTask;

    public OperationRole Role() => OperationRole.Events;
}
