using Npgsql;

namespace Platform.Testing;

/// <summary>A schema of its own for one test (or class) in the test run's PostgreSQL, dropped on dispose.</summary>
public sealed class PostgresSchema : IAsyncDisposable
{
    private PostgresSchema(string name, NpgsqlDataSource dataSource)
    {
        Name = name;
        DataSource = dataSource;
    }

    public string Name { get; }

    public NpgsqlDataSource DataSource { get; }

    public string ConnectionString => TestEnvironment.Postgres;

    public static PostgresSchema Create(string prefix = "t", int maxPoolSize = 40)
    {
        var name = $"{prefix}_{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 13, 63)];
        var builder = new NpgsqlConnectionStringBuilder(TestEnvironment.Postgres) { MaxPoolSize = maxPoolSize };
        return new PostgresSchema(name, NpgsqlDataSource.Create(builder.ConnectionString));
    }

    public async Task<T> ScalarAsync<T>(string sql)
    {
        await using var command = DataSource.CreateCommand(sql.Replace("{schema}", Name, StringComparison.Ordinal));
        return (T)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>Runs <paramref name="sql"/> (several statements may be given) with <c>{schema}</c> standing for this schema.</summary>
    public async Task ExecuteAsync(string sql)
    {
        await using var command = DataSource.CreateCommand(sql.Replace("{schema}", Name, StringComparison.Ordinal));
        await command.ExecuteNonQueryAsync();
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await using (var command = DataSource.CreateCommand($"DROP SCHEMA IF EXISTS {Name} CASCADE"))
        {
            await command.ExecuteNonQueryAsync();
        }

        await DataSource.DisposeAsync();
    }
}
