using Npgsql;
using Platform.Contracts.Networking;
using Platform.EventSourcing;
using Platform.EventSourcing.Subscriptions;

namespace Platform.Networking.Tunnels;

/// <summary>Live tunnels as a table, kept in the appending transaction; a detached tunnel's row goes. Handshakes are written beside (see <see cref="TunnelHandshakesConsumer"/>).</summary>
public sealed class TunnelCatalog(string schema) : IProjection
{
    public string Name => "tunnel-catalog";

    public static SchemaMigration Migration { get; } = new("tunnel-catalog", 1, """
        CREATE TABLE {schema}.tunnels (
            machine_id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL,
            exit_node_id uuid NOT NULL,
            host_id uuid NOT NULL,
            tunnel_address text NOT NULL,
            state text NOT NULL,
            public_key text,
            requested_at timestamptz NOT NULL,
            attached_at timestamptz,
            latest_handshake_at timestamptz,
            checked_at timestamptz
        );
        CREATE INDEX ON {schema}.tunnels (tenant_id, machine_id);
        """);

    /// <summary>Each tunnel's health (see <see cref="TunnelHealth"/>) and since when, and when a re-attach in flight was asked for.</summary>
    public static SchemaMigration HealthMigration { get; } = new("tunnel-catalog", 2, $$"""
        ALTER TABLE {schema}.tunnels ADD COLUMN health text NOT NULL DEFAULT '{{TunnelHealth.Pending}}';
        ALTER TABLE {schema}.tunnels ADD COLUMN health_since timestamptz;
        ALTER TABLE {schema}.tunnels ADD COLUMN reattach_requested_at timestamptz;
        CREATE INDEX ON {schema}.tunnels (state);
        """);

    public async Task ApplyAsync(IReadOnlyList<StoredEvent> events, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        foreach (var stored in events)
        {
            switch (stored.Data)
            {
                case TunnelRequested e:
                    await transaction.ExecuteAsync($"""
                        INSERT INTO {schema}.tunnels (machine_id, tenant_id, exit_node_id, host_id, tunnel_address, state, requested_at)
                        VALUES ($1, $2, $3, $4, $5, '{TunnelStates.Attaching}', $6) ON CONFLICT (machine_id) DO NOTHING
                        """, cancellationToken, e.MachineId, e.TenantId, e.ExitNodeId, e.HostId, e.TunnelAddress, e.RequestedAt);
                    break;
                case TunnelAttached e:
                    // A new key (a first attach or a re-attach): earlier handshakes were another key's.
                    await transaction.ExecuteAsync($"""
                        UPDATE {schema}.tunnels SET state = '{TunnelStates.Attached}', public_key = $2, attached_at = $3, health = '{TunnelHealth.Pending}',
                            health_since = $3, latest_handshake_at = NULL, reattach_requested_at = NULL
                        WHERE machine_id = $1
                        """, cancellationToken, e.MachineId, e.PublicKey, e.AttachedAt);
                    break;
                case TunnelReattachRequested e:
                    await transaction.ExecuteAsync($"UPDATE {schema}.tunnels SET state = '{TunnelStates.Attaching}', reattach_requested_at = $2 WHERE machine_id = $1",
                        cancellationToken, e.MachineId, e.RequestedAt);
                    break;
                case TunnelReattachFailed e:
                    await transaction.ExecuteAsync($"""
                        UPDATE {schema}.tunnels SET state = '{TunnelStates.Attached}', health = '{TunnelHealth.Down}', health_since = $2, reattach_requested_at = NULL
                        WHERE machine_id = $1
                        """, cancellationToken, e.MachineId, e.FailedAt);
                    break;
                case TunnelDown e:
                    await transaction.ExecuteAsync($"UPDATE {schema}.tunnels SET health = '{TunnelHealth.Down}', health_since = $2 WHERE machine_id = $1",
                        cancellationToken, e.MachineId, e.At);
                    break;
                case TunnelUp e:
                    await transaction.ExecuteAsync($"UPDATE {schema}.tunnels SET health = '{TunnelHealth.Up}', health_since = $2 WHERE machine_id = $1",
                        cancellationToken, e.MachineId, e.At);
                    break;
                case TunnelDetachRequested e:
                    await transaction.ExecuteAsync($"UPDATE {schema}.tunnels SET state = '{TunnelStates.Detaching}' WHERE machine_id = $1", cancellationToken, e.MachineId);
                    break;
                case TunnelDetached e:
                    await transaction.ExecuteAsync($"DELETE FROM {schema}.tunnels WHERE machine_id = $1", cancellationToken, e.MachineId);
                    break;
                case TunnelAbandoned e:
                    await transaction.ExecuteAsync($"DELETE FROM {schema}.tunnels WHERE machine_id = $1", cancellationToken, e.MachineId);
                    break;
            }
        }
    }

    public async Task ResetAsync(NpgsqlTransaction transaction, CancellationToken cancellationToken) =>
        await transaction.ExecuteAsync($"TRUNCATE {schema}.tunnels", cancellationToken);
}
