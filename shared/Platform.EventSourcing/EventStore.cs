using JasperFx;
using JasperFx.Events;
using Marten;
using Npgsql;
using Platform.Contracts;
using Weasel.Core;

namespace Platform.EventSourcing;

/// <summary>
/// A service's event store: Marten's event tables (<c>mt_events</c>, <c>mt_streams</c>) in the service's own PostgreSQL
/// schema, with string stream keys and expected-version concurrency. Marten's sequence gives every event its global
/// position. Appends run side by side; a reader of the global order reads only up to where no append is still running, so
/// it never passes over an event that commits late (see <see cref="AppendOrder"/>).
/// </summary>
public sealed partial class EventStore : IEventStreams, IAsyncDisposable
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
        Marten = new DocumentStore(MartenOptions(dataSource, options));
    }

    public NpgsqlDataSource DataSource { get; }

    /// <summary>The Marten store over this service's schema.</summary>
    public IDocumentStore Marten { get; }

    public string Schema => _options.Schema;

    public EventTypeRegistry Types => _options.Types;

    /// <summary>
    /// The advisory lock every append of the store holds (shared) from before its positions are drawn until it commits. A tool
    /// that takes it exclusively with <c>pg_advisory_xact_lock(hashtextextended(name, 0))</c> holds up every append of the store.
    /// </summary>
    public static string AppendOrderLockName(string schema) => AppendOrder.LockName(schema);

    /// <summary>The LISTEN channel an append notifies at commit.</summary>
    public string NotificationChannel => Schema + "_events";

    /// <summary>The store's own tables beside Marten's (subscription checkpoints).</summary>
    public static IReadOnlyList<SchemaMigration> Migrations => EventStoreSchema.Migrations;

    /// <summary>
    /// Creates or updates Marten's event tables and functions in the schema (one instance at a time), then the store's own
    /// tables, and moves the events of the store this one replaced into Marten's tables, once.
    /// </summary>
    public async Task MigrateAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        await using (var take = new NpgsqlCommand("SELECT pg_advisory_lock(hashtextextended($1, 0))", connection) { Parameters = { new() { Value = "platform-marten-migrate:" + Schema } } })
        {
            await take.ExecuteNonQueryAsync(cancellationToken);
        }

        try
        {
            await Marten.Storage.ApplyAllConfiguredChangesToDatabaseAsync(AutoCreate.CreateOrUpdate);
            await SchemaMigrator.ApplyAsync(DataSource, Schema, [.. Migrations, EventStoreSchema.ImportFromTheFormerStore], cancellationToken);
        }
        finally
        {
            await SessionLease.ReleaseAllAsync(connection);
        }
    }

    public ValueTask DisposeAsync()
    {
        Marten.Dispose();
        return ValueTask.CompletedTask;
    }

    private static StoreOptions MartenOptions(NpgsqlDataSource dataSource, EventStoreOptions options)
    {
        var marten = new StoreOptions();
        marten.Connection(dataSource);
        marten.DatabaseSchemaName = options.Schema;
        marten.Events.DatabaseSchemaName = options.Schema;
        marten.Events.StreamIdentity = StreamIdentity.AsString;
        // Client timestamps (the store's TimeProvider), and one function call per stream in each append.
        marten.Events.AppendMode = EventAppendMode.QuickWithServerTimestamps;
        marten.Events.MetadataConfig.HeadersEnabled = true;
        // The platform's JSON, as on the bus and over HTTP (camelCase, kebab-case enums as strings).
        marten.UseSystemTextJsonForSerialization(EnumStorage.AsString, Casing.CamelCase, json =>
        {
            foreach (var converter in json.Converters.OfType<System.Text.Json.Serialization.JsonStringEnumConverter>().ToArray())
            {
                json.Converters.Remove(converter);
            }

            PlatformJson.Apply(json);
        });
        // The schema is made by MigrateAsync at start, never checked on a first append (which would take a second connection).
        marten.AutoCreateSchemaObjects = AutoCreate.None;
        marten.DisableNpgsqlLogging = true;
        foreach (var (name, type) in options.Types.Mappings)
        {
            marten.Events.MapEventType(type, name);
        }

        return marten;
    }
}
