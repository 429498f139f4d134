using Npgsql;
using Platform.Contracts.Networking;
using Platform.EventSourcing;
using Platform.EventSourcing.Subscriptions;

namespace Platform.Networking.Forwards;

/// <summary>Port forwards as a table, kept in the appending transaction; a removed forward's row goes.</summary>
public sealed class PortForwardCatalog(string schema) : IProjection
{
    public string Name => "port-forward-catalog";

    public static SchemaMigration Migration { get; } = new("port-forward-catalog", 1, """
        CREATE TABLE {schema}.port_forwards (
            forward_id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL,
            machine_id uuid NOT NULL,
            host_id uuid NOT NULL,
            machine_address text NOT NULL,
            port integer NOT NULL,
            state text NOT NULL,
            host_port integer,
            host_address text,
            last_error text,
            requested_at timestamptz NOT NULL,
            opened_at timestamptz
        );
        CREATE INDEX ON {schema}.port_forwards (tenant_id, forward_id);
        CREATE INDEX ON {schema}.port_forwards (machine_id);
        """);

    public async Task ApplyAsync(IReadOnlyList<StoredEvent> events, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        foreach (var stored in events)
        {
            switch (stored.Data)
            {
                case PortForwardRequested e:
                    await transaction.ExecuteAsync($"""
                        INSERT INTO {schema}.port_forwards (forward_id, tenant_id, machine_id, host_id, machine_address, port, state, requested_at)
                        VALUES ($1, $2, $3, $4, $5, $6, '{PortForwardStates.Opening}', $7) ON CONFLICT (forward_id) DO NOTHING
                        """, cancellationToken, e.ForwardId, e.TenantId, e.MachineId, e.HostId, e.MachineAddress, e.Port, e.RequestedAt);
                    break;
                case PortForwarded e:
                    await transaction.ExecuteAsync($"UPDATE {schema}.port_forwards SET state = '{PortForwardStates.Open}', host_port = $2, host_address = $3, opened_at = $4 WHERE forward_id = $1",
                        cancellationToken, e.ForwardId, e.HostPort, e.HostAddress, e.ForwardedAt);
                    break;
                case PortForwardAbandoned e:
                    await transaction.ExecuteAsync($"UPDATE {schema}.port_forwards SET state = '{PortForwardStates.Failed}', last_error = $2 WHERE forward_id = $1",
                        cancellationToken, e.ForwardId, e.Reason);
                    break;
                case PortForwardRemoveRequested e:
                    await transaction.ExecuteAsync($"UPDATE {schema}.port_forwards SET state = '{PortForwardStates.Closing}' WHERE forward_id = $1", cancellationToken, e.ForwardId);
                    break;
                case PortForwardRemoved e:
                    await transaction.ExecuteAsync($"DELETE FROM {schema}.port_forwards WHERE forward_id = $1", cancellationToken, e.ForwardId);
                    break;
            }
        }
    }

    public async Task ResetAsync(NpgsqlTransaction transaction, CancellationToken cancellationToken) =>
        await transaction.ExecuteAsync($"TRUNCATE {schema}.port_forwards", cancellationToken);
}
