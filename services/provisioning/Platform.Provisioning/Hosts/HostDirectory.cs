using System.Text.Json;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Provisioning;
using Platform.Contracts.Tenancy;
using Platform.EventSourcing;
using Platform.Hosting;

namespace Platform.Provisioning.Hosts;

/// <summary>A host as placement and the API see it; <see cref="Version"/> is its stream's version.</summary>
/// <remarks><see cref="DiskMiB"/> is the size of the filesystem the host keeps machines' disks on.</remarks>
public sealed record HostView(Guid Id, string Name, int Vcpus, int MemoryMiB, int DiskMiB, string Accelerator,
    IReadOnlyList<DriverCapacity> Drivers, IReadOnlyList<TemplateOnHost> Templates, HostUsage Used, DateTimeOffset RegisteredAt, long Version)
{
    /// <summary>Why this host cannot take <paramref name="shape"/> under <paramref name="guardrails"/>, or null when it can.</summary>
    public string? Refusal(MachineShape shape, HostGuardrails guardrails)
    {
        if (Used.Machines + 1 > guardrails.MaxMachinesPerHost)
        {
            return $"host {Name} runs {Used.Machines} machines, the most a host may run (maxMachinesPerHost {guardrails.MaxMachinesPerHost})";
        }

        var memoryForMachines = MemoryMiB - guardrails.ReservedHostMemoryMiB;
        if (Used.MemoryMiB + shape.MemoryMiB > memoryForMachines)
        {
            return $"host {Name} has {Math.Max(0, memoryForMachines - Used.MemoryMiB)} MiB of memory left for machines ({guardrails.ReservedHostMemoryMiB} MiB reserved for the host), {shape.MemoryMiB} MiB asked";
        }

        var vcpuLimit = (int)Math.Floor(Vcpus * guardrails.MaxVcpuOvercommit);
        if (Used.Vcpus + shape.Vcpus > vcpuLimit)
        {
            return $"host {Name} has {Math.Max(0, vcpuLimit - Used.Vcpus)} vCPUs left ({Vcpus} cores, overcommit {guardrails.MaxVcpuOvercommit}), {shape.Vcpus} asked";
        }

        var diskForMachines = DiskMiB - guardrails.ReservedHostDiskMiB;
        if (shape.DiskMiB > 0 && Used.DiskMiB + shape.DiskMiB > diskForMachines)
        {
            return $"host {Name} has {Math.Max(0, diskForMachines - Used.DiskMiB)} MiB of disk left for machines ({guardrails.ReservedHostDiskMiB} MiB reserved for the host), {shape.DiskMiB} MiB asked";
        }

        return null;
    }
}

public sealed record HostUsage(int Machines, int Vcpus, int MemoryMiB, int DiskMiB = 0);

public sealed record TemplateView(string Name, string Version, string Kind, string Sha256, DateTimeOffset RegisteredAt);

/// <summary>Reads hosts, template versions and the guardrails placement applies.</summary>
public sealed class HostDirectory(NpgsqlDataSource dataSource, EventStore store, IConfiguration configuration)
{
    private readonly HostGuardrails _defaults = ConfigurationRecords.Read(configuration.GetSection("Platform:Provisioning:DefaultGuardrails"), HostGuardrails.Default);

    public async Task<IReadOnlyList<HostView>> HostsAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT host, machines, vcpus, memory_mib, version, disk_mib FROM {store.Schema}.hosts ORDER BY name, id");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var hosts = new List<HostView>();
        while (await reader.ReadAsync(cancellationToken))
        {
            var host = JsonSerializer.Deserialize<HostRegistered>(reader.GetString(0), PlatformJson.Options)!;
            hosts.Add(new HostView(host.HostId, host.Name, host.Vcpus, host.MemoryMiB, host.DiskMiB, host.Accelerator, host.Drivers, host.Templates,
                new HostUsage(reader.GetInt32(1), reader.GetInt32(2), reader.GetInt32(3), reader.GetInt32(5)), host.RegisteredAt, reader.GetInt64(4)));
        }

        return hosts;
    }

    /// <summary>The host's registration as last recorded, or null for a host not seen before.</summary>
    public async Task<HostRegistered?> RegistrationAsync(Guid hostId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT host FROM {store.Schema}.hosts WHERE id = $1");
        command.Parameters.AddWithValue(hostId);
        return await command.ExecuteScalarAsync(cancellationToken) is string json ? JsonSerializer.Deserialize<HostRegistered>(json, PlatformJson.Options) : null;
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
