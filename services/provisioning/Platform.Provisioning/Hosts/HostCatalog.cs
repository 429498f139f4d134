using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Platform.Contracts;
using Platform.Contracts.Provisioning;
using Platform.EventSourcing;
using Platform.EventSourcing.Subscriptions;

namespace Platform.Provisioning.Hosts;

/// <summary>
/// Hosts (with what is placed on them) and template versions as tables, kept in the appending transaction.
/// A host's row carries its stream's version: placement decides on the row and appends to the stream with
/// that version expected, so two requests racing for a host's last room cannot both win, and no request
/// reads the host's whole history.
/// </summary>
public sealed class HostCatalog(string schema) : IProjection
{
    public string Name => "host-catalog";

    public static string StreamOf(Guid hostId) => $"host-{hostId}";

    public static SchemaMigration VersionMigration { get; } = new("host-catalog", 2, """
        ALTER TABLE {schema}.hosts ADD COLUMN version bigint NOT NULL DEFAULT 0;
        """);

    public static SchemaMigration DiskMigration { get; } = new("host-catalog", 3, """
        ALTER TABLE {schema}.hosts ADD COLUMN disk_mib int NOT NULL DEFAULT 0;
        """);

    public static SchemaMigration Migration { get; } = new("host-catalog", 1, """
        CREATE TABLE {schema}.hosts (
            id uuid PRIMARY KEY,
            name text NOT NULL,
            host jsonb NOT NULL,
            machines int NOT NULL DEFAULT 0,
            memory_mib int NOT NULL DEFAULT 0,
            vcpus int NOT NULL DEFAULT 0,
            registered_at timestamptz NOT NULL
        );
        CREATE TABLE {schema}.templates (
            name text NOT NULL,
            version text NOT NULL,
            kind text NOT NULL,
            sha256 text NOT NULL,
            registered_at timestamptz NOT NULL,
            PRIMARY KEY (name, version)
        );
        CREATE TABLE {schema}.host_guardrails (
            id int PRIMARY KEY CHECK (id = 1),
            guardrails jsonb NOT NULL,
            set_at timestamptz NOT NULL
        );
        """);

    public async Task ApplyAsync(IReadOnlyList<StoredEvent> events, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        foreach (var stored in events)
        {
            await using var command = stored.Data switch
            {
                HostRegistered host => transaction.Command($"""
                    INSERT INTO {schema}.hosts (id, name, host, registered_at, version) VALUES ($1, $2, $3, $4, $5)
                    ON CONFLICT (id) DO UPDATE SET name = excluded.name, host = excluded.host, registered_at = excluded.registered_at, version = excluded.version
                    """, host.HostId, host.Name, Json(host), host.RegisteredAt, stored.StreamVersion),
                MachinePlaced placed => transaction.Command(
                    $"UPDATE {schema}.hosts SET machines = machines + 1, memory_mib = memory_mib + $2, vcpus = vcpus + $3, disk_mib = disk_mib + $5, version = $4 WHERE id = $1",
                    placed.HostId, placed.Shape.MemoryMiB, placed.Shape.Vcpus, stored.StreamVersion, placed.Shape.DiskMiB),
                MachineUnplaced unplaced => transaction.Command(
                    $"UPDATE {schema}.hosts SET machines = machines - 1, memory_mib = memory_mib - $2, vcpus = vcpus - $3, disk_mib = disk_mib - $5, version = $4 WHERE id = $1",
                    unplaced.HostId, unplaced.Shape.MemoryMiB, unplaced.Shape.Vcpus, stored.StreamVersion, unplaced.Shape.DiskMiB),
                TemplateRegistered template => transaction.Command(
                    $"INSERT INTO {schema}.templates (name, version, kind, sha256, registered_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    template.Name, template.Version, template.Kind, template.Sha256, template.RegisteredAt),
                _ => null,
            };
            if (command is not null)
            {
                await command.ExecuteNonQueryAsync(cancellationToken);
            }
        }
    }

    public async Task ResetAsync(NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        await transaction.ExecuteAsync($"TRUNCATE {schema}.hosts, {schema}.templates", cancellationToken);
    }

    private static NpgsqlParameter Json(object value) => new() { NpgsqlDbType = NpgsqlDbType.Jsonb, Value = JsonSerializer.Serialize(value, PlatformJson.Options) };
}
