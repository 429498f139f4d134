using Npgsql;

namespace Platform.EventSourcing;

/// <summary>
/// A lease held by one process among many: a PostgreSQL session advisory lock on a connection kept open
/// for as long as the work runs. When the holder dies its connection closes and another takes over.
/// </summary>
public static class SessionLease
{
    public static async Task<bool> TryTakeAsync(NpgsqlConnection connection, string name, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", connection)
        {
            Parameters = { new() { Value = name } },
        };
        return (bool)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>
    /// Gives back every lease and LISTEN of the connection now: a pooled connection keeps session state
    /// until its next use, which would hold the lease while it idles in the pool.
    /// </summary>
    public static async Task ReleaseAllAsync(NpgsqlConnection connection)
    {
        if (connection.State != System.Data.ConnectionState.Open)
        {
            return;
        }

        try
        {
            await using var release = new NpgsqlCommand("UNLISTEN *; SELECT pg_advisory_unlock_all()", connection);
            await release.ExecuteNonQueryAsync(CancellationToken.None);
        }
        catch (NpgsqlException)
        {
            NpgsqlConnection.ClearPool(connection);
        }
    }
}
