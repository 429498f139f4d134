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
                    await transaction.ExecuteAsync($"UPDATE {schema}.tunnels SET state = '{TunnelStates.Attached}', public_key = $2, attached_at = $3 WHERE machine_id = $1",
                        cancellationToken, e.MachineId, e.PublicKey, e.AttachedAt);
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
