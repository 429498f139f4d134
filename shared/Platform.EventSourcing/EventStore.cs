using Npgsql;

namespace Platform.EventSourcing;

/// <summary>
/// A service's event store in its own PostgreSQL schema: streams with expected-version concurrency and one
/// global order. Appends take the global position row last and hold it to commit, so positions become
/// visible in order and a reader tailing the global position never meets a late, lower position.
/// </summary>
public sealed partial class EventStore
{
    private readonly EventStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _appending;

    public EventStore(NpgsqlDataSource dataSource, EventStoreOptions options, TimeProvider? time = null)
    {
        SchemaMigrator.EnsureValidSchemaName(options.Schema);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.MaxConcurrentAppends);
        DataSource = dataSource;
        _options = options;
        _time = time ?? TimeProvider.System;
        _appending = new SemaphoreSlim(options.MaxConcurrentAppends, options.MaxConcurrentAppends);
    }

    public NpgsqlDataSource DataSource { get; }

    public string Schema => _options.Schema;

    public EventTypeRegistry Types => _options.Types;

    /// <summary>The LISTEN channel an append notifies with its last position.</summary>
    public string NotificationChannel => Schema + "_events";

    public static IReadOnlyList<SchemaMigration> Migrations => EventStoreSchema.Migrations;

    public Task MigrateAsync(CancellationToken cancellationToken = default) =>
        SchemaMigrator.ApplyAsync(DataSource, Schema, Migrations, cancellationToken);
}
