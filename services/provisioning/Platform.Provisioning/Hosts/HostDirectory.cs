using System.Text.Json;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Provisioning;
using Platform.Contracts.Tenancy;
using Platform.EventSourcing;
using Platform.Hosting;

namespace Platform.Provisioning.Hosts;

public sealed record HostView(Guid Id, string Name, int Vcpus, int MemoryMiB, int DiskMiB, string Accelerator,
    IReadOnlyList<DriverCapacity> Drivers, IReadOnlyList<TemplateOnHost> Templates, HostUsage Used, DateTimeOffset RegisteredAt);

public sealed record HostUsage(int Machines, int Vcpus, int MemoryMiB);

public sealed record TemplateView(string Name, string Version, string Kind, string Sha256, DateTimeOffset RegisteredAt);

/// <summary>Reads hosts, template versions and the guardrails placement applies.</summary>
public sealed class HostDirectory(NpgsqlDataSource dataSource, EventStore store, IConfiguration configuration)
{
    private readonly HostGuardrails _defaults = ConfigurationRecords.Read(configuration.GetSection("Platform:Provisioning:DefaultGuardrails"), HostGuardrails.Default);

    public async Task<IReadOnlyList<HostView>> HostsAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT host, machines, vcpus, memory_mib FROM {store.Schema}.hosts ORDER BY name, id");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var hosts = new List<HostView>();
        while (await reader.ReadAsync(cancellationToken))
        {
            var host = JsonSerializer.Deserialize<HostRegistered>(reader.GetString(0), PlatformJson.Options)!;
            hosts.Add(new HostView(host.HostId, host.Name, host.Vcpus, host.MemoryMiB, host.DiskMiB, host.Accelerator, host.Drivers, host.Templates,
                new HostUsage(reader.GetInt32(1), reader.GetInt32(2), reader.GetInt32(3)), host.RegisteredAt));
        }

        return hosts;
    }

    public async Task<IReadOnlyList<TemplateView>> TemplatesAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT name, version, kind, sha256, registered_at FROM {store.Schema}.templates ORDER BY name, registered_at DESC, version");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var templates = new List<TemplateView>();
        while (await reader.ReadAsync(cancellationToken))
        {
            templates.Add(new TemplateView(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetFieldValue<DateTimeOffset>(4)));
        }

        return templates;
    }

    public async Task<HostGuardrails> GuardrailsAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT guardrails FROM {store.Schema}.host_guardrails WHERE id = 1");
        return await command.ExecuteScalarAsync(cancellationToken) is string json
            ? JsonSerializer.Deserialize<HostGuardrails>(json, PlatformJson.Options)!
            : _defaults;
    }
}
