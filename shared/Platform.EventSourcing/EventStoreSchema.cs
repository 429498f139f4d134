namespace Platform.EventSourcing;

/// <summary>The store's tables beside Marten's in a service's schema.</summary>
internal static class EventStoreSchema
{
    public static IReadOnlyList<SchemaMigration> Migrations { get; } =
    [
        new("subscriptions", 1, """
            CREATE TABLE IF NOT EXISTS {schema}.checkpoints (
                name text PRIMARY KEY,
                position bigint NOT NULL,
                updated_at timestamptz NOT NULL
            );
            """),
    ];

    /// <summary>
    /// The store before Marten kept its events in <c>events</c>, <c>streams</c> and <c>global_position</c>. Their events move
    /// into Marten's tables with their positions, versions, ids and metadata, so checkpoints stay valid; then they go.
    /// Runs after Marten has made its tables.
    /// </summary>
    public static SchemaMigration ImportFromTheFormerStore { get; } = new("event-store-marten", 1, """
        DO $$
        BEGIN
            IF to_regclass('{schema}.global_position') IS NOT NULL THEN
                INSERT INTO {schema}.mt_streams (id, type, version, timestamp, created, tenant_id, is_archived)
                SELECT stream_id, NULL, version, updated_at, created_at, '*DEFAULT*', false FROM {schema}.streams;
                INSERT INTO {schema}.mt_events (seq_id, id, stream_id, version, data, type, timestamp, tenant_id, mt_dotnet_type, is_archived, headers)
                SELECT position, event_id, stream_id, stream_version, data, event_type, recorded_at, '*DEFAULT*', NULL, false, metadata
                FROM {schema}.events;
                PERFORM setval('{schema}.mt_events_sequence', GREATEST((SELECT last FROM {schema}.global_position), 1));
                DROP TABLE {schema}.events, {schema}.streams, {schema}.global_position;
                DROP FUNCTION IF EXISTS {schema}.require_stream_version(text, bigint);
            END IF;
        END
        $$;
        """);
}
