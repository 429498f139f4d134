using MassTransit;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;
using Platform.Contracts.Tenancy;
using Platform.EventSourcing;
using Platform.EventSourcing.Subscriptions;
using Platform.Hosting;
using Platform.Hosting.Security;
using Platform.Messaging.Inbox;
using Platform.Tenancy.Directory;
using Platform.Tenancy.Tenants;

namespace Platform.Tenancy.Inventory;

public sealed record InventoryEntry(Guid MachineId, Guid TenantId, string Name, string Kind, string Owner, DateTimeOffset RegisteredAt);

/// <summary>
/// Each tenant's machines with their owners, as the creation and destroy flows register and unregister
/// them: one stream per machine (<c>inventory-{machineId}</c>) and a table kept in the same transaction.
/// </summary>
public sealed class MachineInventory(string schema) : IProjection
{
    public string Name => "machine-inventory";

    public static SchemaMigration Migration { get; } = new("machine-inventory", 1, """
        CREATE TABLE {schema}.inventory (
            machine_id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL,
            name text NOT NULL,
            kind text NOT NULL,
            owner text NOT NULL,
            registered_at timestamptz NOT NULL
        );
        CREATE INDEX ON {schema}.inventory (tenant_id, machine_id);
        """);

    public static string StreamOf(Guid machineId) => $"inventory-{machineId}";

    public async Task ApplyAsync(IReadOnlyList<StoredEvent> events, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        foreach (var stored in events)
        {
            await using var command = stored.Data switch
            {
                MachineRegistered registered => transaction.Command($"INSERT INTO {schema}.inventory VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (machine_id) DO NOTHING",
                    registered.MachineId, registered.TenantId, registered.Name, registered.Kind, registered.Owner, registered.RegisteredAt),
                MachineUnregistered unregistered => transaction.Command($"DELETE FROM {schema}.inventory WHERE machine_id = $1", unregistered.MachineId),
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
        await transaction.ExecuteAsync($"TRUNCATE {schema}.inventory", cancellationToken);
    }

    public static void MapInventory(IEndpointRouteBuilder app) =>
        app.MapGet("/api/v1/tenants/{tenantId:guid}/inventory", ListAsync);

    private static async Task<Ok<Page<InventoryEntry>>> ListAsync(Guid tenantId, Caller caller, NpgsqlDataSource dataSource, int? limit, string? cursor, CancellationToken cancellationToken)
    {
        await TenantEndpoints.FindVisibleAsync(dataSource, caller, tenantId, cancellationToken);
        var (take, after) = Paging.Read(limit, cursor);
        await using var command = dataSource.CreateCommand(
            $"SELECT machine_id, tenant_id, name, kind, owner, registered_at FROM {TenancyService.Schema}.inventory WHERE tenant_id = $1 AND machine_id > $2 ORDER BY machine_id LIMIT $3");
        command.Parameters.Add(new NpgsqlParameter { Value = tenantId });
        command.Parameters.Add(new NpgsqlParameter { Value = after });
        command.Parameters.Add(new NpgsqlParameter { Value = take + 1 });
        var entries = new List<InventoryEntry>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                entries.Add(new InventoryEntry(reader.GetGuid(0), reader.GetGuid(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), reader.GetFieldValue<DateTimeOffset>(5)));
            }
        }

        return TypedResults.Ok(Paging.Of(entries, take, e => e.MachineId));
    }
}

/// <summary>Registers a machine once, whatever how often the command arrives; a registered machine answers with its entry again.</summary>
public sealed class RegisterMachineConsumer(EventStore store, Inbox inbox, TimeProvider time) : IConsumer<RegisterMachine>
{
    public async Task Consume(ConsumeContext<RegisterMachine> context)
    {
        var command = context.Message;
        var stream = MachineInventory.StreamOf(command.MachineId);
        var history = await store.ReadStreamAsync(stream, cancellationToken: context.CancellationToken);
        if (history.LastOrDefault()?.Data is MachineRegistered registered)
        {
            await context.Publish(registered);
            return;
        }

        await inbox.HandleOnceAsync(context, nameof(RegisterMachineConsumer), session =>
        {
            session.Append(stream, ExpectedVersion.Exactly(history.Count),
                [new MachineRegistered(command.MachineId, command.TenantId, command.Name, command.Kind, command.Owner, time.GetUtcNow())],
                new EventMetadata(context.CorrelationId, context.MessageId, command.TenantId.ToString(), "service:tenancy"));
            return Task.CompletedTask;
        });
    }
}

public sealed class UnregisterMachineConsumer(EventStore store, Inbox inbox, TimeProvider time) : IConsumer<UnregisterMachine>
{
    public async Task Consume(ConsumeContext<UnregisterMachine> context)
    {
        var command = context.Message;
        var stream = MachineInventory.StreamOf(command.MachineId);
        var history = await store.ReadStreamAsync(stream, cancellationToken: context.CancellationToken);
        if (history.LastOrDefault()?.Data is not MachineRegistered)
        {
            await context.Publish(history.LastOrDefault()?.Data as MachineUnregistered ?? new MachineUnregistered(command.MachineId, command.TenantId, time.GetUtcNow()));
            return;
        }

        await inbox.HandleOnceAsync(context, nameof(UnregisterMachineConsumer), session =>
        {
            session.Append(stream, ExpectedVersion.Exactly(history.Count),
                [new MachineUnregistered(command.MachineId, command.TenantId, time.GetUtcNow())],
                new EventMetadata(context.CorrelationId, context.MessageId, command.TenantId.ToString(), "service:tenancy"));
            return Task.CompletedTask;
        });
    }
}
