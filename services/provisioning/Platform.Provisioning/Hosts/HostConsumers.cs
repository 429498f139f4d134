using System.Text.Json;
using MassTransit;
using Npgsql;
using NpgsqlTypes;
using Platform.Contracts;
using Platform.Contracts.Provisioning;
using Platform.Contracts.Tenancy;
using Platform.EventSourcing;

namespace Platform.Provisioning.Hosts;

/// <summary>
/// Records a host agent's report as the host's registration when it says something new (agents repeat it
/// periodically), and every template version it brings that is new.
/// </summary>
public sealed class HostCapacityReportedConsumer(EventStore store, HostDirectory directory, TimeProvider time) : IConsumer<HostCapacityReported>
{
    public async Task Consume(ConsumeContext<HostCapacityReported> context)
    {
        var report = context.Message;
        var now = time.GetUtcNow();
        var registration = new HostRegistered(report.HostId, report.Name, report.Vcpus, report.MemoryMiB, report.DiskMiB, report.Accelerator, report.Drivers, report.Templates, now, report.DataPlaneUrl);
        if (await directory.RegistrationAsync(report.HostId, context.CancellationToken) is { } registered && SameOffer(registered, registration))
        {
            return;
        }

        var known = (await directory.TemplatesAsync(context.CancellationToken)).Select(t => (t.Name, t.Version)).ToHashSet();
        var metadata = new EventMetadata(context.CorrelationId, context.MessageId, Actor: $"host:{report.HostId}");

        await using var session = await store.BeginSessionAsync(context.CancellationToken);
        session.Append(HostCatalog.StreamOf(report.HostId), ExpectedVersion.Any, [registration], metadata);
        foreach (var template in report.Templates.Where(t => !known.Contains((t.Name, t.Version))))
        {
            session.Append($"template-{template.Name}", ExpectedVersion.Any, [new TemplateRegistered(template.Name, template.Version, template.Kind, template.Sha256, now)], metadata);
        }

        await session.CommitAsync(context.CancellationToken);
    }

    /// <summary>Registrations are compared as JSON: their lists have no value equality.</summary>
    private static bool SameOffer(HostRegistered registered, HostRegistered registration) =>
        JsonSerializer.Serialize(registered with { RegisteredAt = default }, PlatformJson.Options) ==
        JsonSerializer.Serialize(registration with { RegisteredAt = default }, PlatformJson.Options);
}

/// <summary>Keeps provisioning's copy of the host guardrails tenancy owns; an older change never overwrites a newer one.</summary>
public sealed class HostGuardrailsSetConsumer(NpgsqlDataSource dataSource, EventStore store) : IConsumer<HostGuardrailsSet>
{
    public async Task Consume(ConsumeContext<HostGuardrailsSet> context)
    {
        await using var command = dataSource.CreateCommand($"""
            INSERT INTO {store.Schema}.host_guardrails (id, guardrails, set_at) VALUES (1, $1, $2)
            ON CONFLICT (id) DO UPDATE SET guardrails = excluded.guardrails, set_at = excluded.set_at
            WHERE {store.Schema}.host_guardrails.set_at < excluded.set_at
            """);
        command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Jsonb, Value = JsonSerializer.Serialize(context.Message.Guardrails, PlatformJson.Options) });
        command.Parameters.AddWithValue(context.Message.SetAt);
        await command.ExecuteNonQueryAsync(context.CancellationToken);
    }
}
