using Npgsql;

namespace Platform.EventSourcing.Subscriptions;

/// <summary>
/// Statements on a projection's transaction with positional parameters (<c>$1</c>, <c>$2</c>, …): one way for
/// every read model to write. A null value is SQL NULL; an <see cref="NpgsqlParameter"/> is taken as it is
/// (to give a value its database type, such as jsonb).
/// </summary>
public static class TransactionCommands
{
    public static NpgsqlCommand Command(this NpgsqlTransaction transaction, string sql, params object?[] values)
    {
        var command = new NpgsqlCommand(sql, transaction.Connection, transaction);
        foreach (var value in values)
        {
            command.Parameters.Add(value as NpgsqlParameter ?? new NpgsqlParameter { Value = value ?? DBNull.Value });
        }

        return command;
    }

    public static async Task ExecuteAsync(this NpgsqlTransaction transaction, string sql, CancellationToken cancellationToken, params object?[] values)
    {
        await using var command = transaction.Command(sql, values);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
