namespace Platform.EventSourcing;

/// <summary>The event store's tables in a service's schema.</summary>
internal static class EventStoreSchema
{
    public const string Component = "event-store";

    public static IReadOnlyList<SchemaMigration> Migrations { get; } =
    [
        new(Component, 1, """
            CREATE TABLE {schema}.streams (
                stream_id text PRIMARY KEY,
                version bigint NOT NULL,
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL
            );
            -- One row whose lock orders every append: positions are handed out in commit order.
            CREATE TABLE {schema}.global_position (
                id int PRIMARY KEY CHECK (id = 1),
                last bigint NOT NULL
            );
            INSERT INTO {schema}.global_position VALUES (1, 0);
            CREATE TABLE {schema}.events (
                position bigint PRIMARY KEY,
                stream_id text NOT NULL,
                stream_version bigint NOT NULL,
                event_id uuid NOT NULL UNIQUE,
                event_type text NOT NULL,
                data jsonb NOT NULL,
                metadata jsonb NOT NULL,
                recorded_at timestamptz NOT NULL,
                UNIQUE (stream_id, stream_version)
            );
            CREATE TABLE {schema}.checkpoints (
                name text PRIMARY KEY,
                position bigint NOT NULL,
                updated_at timestamptz NOT NULL
            );
            """),
        new(Component, 2, """
            -- Fails an append whose expected version does not hold, so the whole append can travel as one
            -- implicit transaction and abort in the database instead of after a round trip.
            CREATE FUNCTION {schema}.require_stream_version(stream text, new_version bigint) RETURNS bigint
            LANGUAGE plpgsql AS $$
            BEGIN
                IF new_version IS NULL THEN
                    RAISE EXCEPTION 'stream % is not at the expected version', stream USING ERRCODE = 'PW409';
                END IF;
                RETURN new_version;
            END
            $$;
            """),
    ];
}
