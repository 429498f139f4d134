using Platform.Hosting.Security;
using Platform.Testing;

namespace Platform.Benchmarks;

/// <summary>
/// What a machine's creation needs on the bench instance: provisioning (and its saga), networking (addresses), tenancy
/// (quota and inventory) and one host agent, as real processes on a database and virtual host of their own. Telemetry
/// and the gateway are left out: neither is on a creation's path (the gateway adds its own, measured, proxy hop).
/// </summary>
internal sealed class BenchStack : IAsyncDisposable
{
    private readonly List<ServiceProcess> _services = [];
    private readonly string _agentState = Path.Combine(Path.GetTempPath(), $"platform-agent-bench-{Guid.NewGuid():N}");
    private readonly string _adminCredentials = Path.Combine(Path.GetTempPath(), $"platform-admin-bench-{Guid.NewGuid():N}.json");
    private PostgresDatabase? _database;
    private RabbitVirtualHost? _virtualHost;

    public string RunPath { get; } = $"/dev/shm/pmb-{Guid.NewGuid():N}"[..22];

    public ServiceProcess Provisioning => _services.Single(s => s.Service == "provisioning");

    /// <summary>The gateway, when the stack was started with one (<see cref="StartGatewayAsync"/>).</summary>
    public ServiceProcess? Gateway { get; private set; }

    /// <summary>The errors every process of the stack logged: what a failed run prints.</summary>
    public IEnumerable<string> Errors => _services.SelectMany(s => s.Output).Where(l => l.Contains("\"LogLevel\":\"Error\"", StringComparison.Ordinal) || l.Contains("\"LogLevel\":\"Critical\"", StringComparison.Ordinal));

    /// <summary>A stack whose host agent offers every kind that runs on a host: sandboxes, containers (on <paramref name="podman"/>) and micro-VMs.</summary>
    public static Task<BenchStack> WithHostDriversAsync(PodmanService podman) => StartAsync(new Dictionary<string, string>
    {
        ["Platform__Agent__Drivers__0"] = "sandbox",
        ["Platform__Agent__Drivers__1"] = "container",
        ["Platform__Agent__Drivers__2"] = "microvm",
        ["Platform__Agent__Container__Socket"] = podman.Socket,
        ["Platform__Agent__Container__CgroupParent"] = podman.CgroupParent,
    });

    public static async Task<BenchStack> StartAsync(IReadOnlyDictionary<string, string> agentSettings)
    {
        var stack = new BenchStack();
        try
        {
            await stack.StartServicesAsync(agentSettings);
            return stack;
        }
        catch
        {
            await stack.DisposeAsync();
            throw;
        }
    }

    /// <summary>A client that calls provisioning as the gateway would for a tenant-admin of a tenant of its own.</summary>
    public async Task<HttpClient> TenantAsync()
    {
        var tenant = await Provisioning.CreateGatewayLikeClientAsync();
        tenant.DefaultRequestHeaders.Add(IdentityHeaders.Subject, "user:bench");
        tenant.DefaultRequestHeaders.Add(IdentityHeaders.Role, Roles.TenantAdmin);
        tenant.DefaultRequestHeaders.Add(IdentityHeaders.TenantId, Guid.CreateVersion7().ToString());
        return tenant;
    }

    public async Task<HttpClient> AdminAsync()
    {
        var admin = await Provisioning.CreateGatewayLikeClientAsync();
        admin.DefaultRequestHeaders.Add(IdentityHeaders.Subject, "user:bench");
        admin.DefaultRequestHeaders.Add(IdentityHeaders.Role, Roles.PlatformAdmin);
        return admin;
    }

    private async Task StartServicesAsync(IReadOnlyDictionary<string, string> agentSettings)
    {
        _database = await PostgresDatabase.CreateAsync();
        _virtualHost = await RabbitVirtualHost.CreateAsync();
        var common = new Dictionary<string, string>
        {
            ["ConnectionStrings__Postgres"] = _database.ConnectionString,
            ["ConnectionStrings__RabbitMq"] = _virtualHost.ConnectionString,
        };
        // Simulated machines take no room: the guardrails are not what is measured either.
        var roomy = new Dictionary<string, string>
        {
            ["MaxVcpuOvercommit"] = "1000",
            ["MaxMachinesPerHost"] = "100000",
        };
        _services.Add(ServiceProcess.Start("provisioning", new Dictionary<string, string>(common.Concat(roomy.Select(r => KeyValuePair.Create($"Platform__Provisioning__DefaultGuardrails__{r.Key}", r.Value))))));
        _services.Add(ServiceProcess.Start("networking", common));
        _services.Add(ServiceProcess.Start("tenancy", new Dictionary<string, string>(common)
        {
            ["Platform__Tenancy__AdminCredentialsFile"] = _adminCredentials,
            // A benchmark's tenant makes hundreds of machines; the quota is not what is measured.
            ["Platform__Tenancy__DefaultQuota__Machines"] = "100000",
            ["Platform__Tenancy__DefaultQuota__Vcpus"] = "100000",
            ["Platform__Tenancy__DefaultQuota__MemoryMiB"] = "100000000",
            ["Platform__Tenancy__DefaultGuardrails__MaxVcpuOvercommit"] = "1000",
            ["Platform__Tenancy__DefaultGuardrails__MaxMachinesPerHost"] = "100000",
        }));
        await Task.WhenAll(_services.Select(s => s.WaitUntilReadyAsync()));
        var agent = new Dictionary<string, string>(common)
        {
            ["Platform__Agent__StatePath"] = _agentState,
            ["Platform__Agent__TemplatesPath"] = Benchmarks.Required("PLATFORM_MICROVM_TEMPLATES"),
            ["Platform__Agent__MicroVmRunPath"] = RunPath,
            ["Platform__Agent__ReportInterval"] = "00:00:01",
        };
        foreach (var (key, value) in agentSettings)
        {
            agent[key] = value;
        }

        _services.Add(ServiceProcess.Start("host-agent", agent));
        await _services[^1].WaitUntilReadyAsync();
        using var admin = await AdminAsync();
        await Eventually.TrueAsync(async () => (await admin.GetStringAsync("/api/v1/hosts")).Contains("\"templates\":[{", StringComparison.Ordinal),
            TimeSpan.FromMinutes(1), "the host agent registers its host and templates");
    }

    /// <summary>
    /// Adds the gateway in front of the stack (telemetry, not running here, is given an address nothing answers) and
    /// answers a client of a tenant-admin of a new tenant, logged in through it as a user would be.
    /// </summary>
    public async Task<HttpClient> StartGatewayAsync()
    {
        var addresses = new Dictionary<string, string> { ["Platform__Gateway__Services__telemetry"] = "http://127.0.0.1:9" };
        foreach (var service in _services.Where(s => s.Service is "provisioning" or "networking" or "tenancy"))
        {
            addresses[$"Platform__Gateway__Services__{service.Service}"] = (await service.Address).ToString();
        }

        // A benchmark's thousands of requests are not what the rate limit is for.
        addresses["Platform__Gateway__RateLimit__RequestsPerSecond"] = "100000";
        addresses["Platform__Gateway__RateLimit__Burst"] = "100000";
        Gateway = ServiceProcess.Start("gateway", addresses);
        _services.Add(Gateway);
        var address = await Gateway.WaitUntilReadyAsync();
        await Eventually.TrueAsync(() => File.Exists(_adminCredentials), TimeSpan.FromSeconds(30), "tenancy writes the first admin's credentials");
        var credentials = System.Text.Json.JsonDocument.Parse(await File.ReadAllTextAsync(_adminCredentials)).RootElement;
        using var anonymous = new HttpClient { BaseAddress = address };
        var admin = await anonymous.LoginAsync(credentials.GetProperty("username").GetString()!, credentials.GetProperty("password").GetString()!);
        return (await admin.CreateTenantWithAdminAsync()).Client;
    }

    public async ValueTask DisposeAsync()
    {
        // The agent first, cleanly: told to, it stops and removes its machines (a benchmark leaves some running), and its
        // pools, namespaces and run files.
        foreach (var agent in _services.Where(s => s.Service == "host-agent"))
        {
            if (Directory.Exists(_agentState))
            {
                await File.WriteAllTextAsync(Path.Combine(_agentState, "remove-machines-on-stop"), "");
            }

            await agent.StopAsync(TimeSpan.FromSeconds(30));
        }

        await new DisposeAll(_services).DisposeAsync();
        if (_virtualHost is not null)
        {
            await _virtualHost.DisposeAsync();
        }

        if (_database is not null)
        {
            await _database.DisposeAsync();
        }

        File.Delete(_adminCredentials);
        foreach (var directory in new[] { _agentState, RunPath }.Where(Directory.Exists))
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
