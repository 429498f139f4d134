using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>The test classes that share one <see cref="PlatformStack"/> (they run one after another).</summary>
[CollectionDefinition(Name)]
public sealed class StackCollection : ICollectionFixture<PlatformStack>
{
    public const string Name = "platform stack";
}

/// <summary>
/// Every service and the gateway as real processes on a database and virtual host of their own, as
/// <c>./platform up</c> runs them, with the first platform-admin bootstrapped. Shared by a test class.
/// </summary>
public sealed class PlatformStack : IAsyncLifetime
{
    private readonly List<ServiceProcess> _services = [];
    private readonly IReadOnlyList<string> _drivers;
    private readonly (string Key, string Value)[] _agentSettings;
    private ServiceEnvironment? _environment;
    private Dictionary<string, string> _agentEnvironment = [];
    private readonly Dictionary<string, Dictionary<string, string>> _serviceEnvironments = [];
    private readonly SemaphoreSlim _restarting = new(1, 1);
    private readonly CancellationTokenSource _stopSupervising = new();
    private Task _supervising = Task.CompletedTask;

    /// <summary>The test broker's management API without the credentials (telemetry uses its own broker credentials there).</summary>
    private static string BrokerManagementUrl =>
        new Uri(TestEnvironment.RabbitMqManagement) is var management ? $"{management.Scheme}://{management.Host}:{management.Port}/" : "";

    public static readonly string[] Services = ["provisioning", "networking", "tenancy", "telemetry"];

    public PlatformStack()
        : this(["microvm", "sandbox", "simulated"])
    {
    }

    /// <summary>A stack whose host agent offers <paramref name="drivers"/>, with more of its settings (<c>Platform__Agent__…</c>).</summary>
    internal PlatformStack(IReadOnlyList<string> drivers, params (string Key, string Value)[] agentSettings)
    {
        _drivers = drivers;
        _agentSettings = agentSettings;
    }

    public string AdminCredentialsFile { get; } = Path.Combine(Path.GetTempPath(), $"platform-admin-{Guid.NewGuid():N}.json");

    public ServiceEnvironment Environment => _environment!;

    public ServiceProcess Gateway { get; private set; } = null!;

    /// <summary>Where the stack's micro-VMs keep their memory, sockets and snapshots (a tmpfs; 'pmt-' marks it as the tests').</summary>
    public string MicroVmRunPath { get; } = $"/dev/shm/pmt-stack-{Guid.NewGuid():N}"[..29];

    /// <summary>The host agent of the stack's one host: micro-VMs, sandboxes, and the simulated driver for control-plane tests (unless made with other drivers).</summary>
    public ServiceProcess? HostAgent { get; private set; }

    public string AgentStatePath { get; } = Path.Combine(Path.GetTempPath(), $"platform-agent-{Guid.NewGuid():N}");

    /// <summary>Where each service listens, for starting another gateway in front of them.</summary>
    public IReadOnlyList<(string Name, Uri Address)> Addresses { get; private set; } = [];

    public ServiceProcess Service(string name) => _services.Single(s => s.Service == name);

    /// <summary>More settings for a service of the stack (environment variables), beside those every stack has.</summary>
    internal IReadOnlyList<(string Service, string Key, string Value)> ServiceSettings { get; init; } = [];

    /// <summary>Settings for every process of the stack: the services, the host agent and the gateway.</summary>
    internal IReadOnlyList<(string Key, string Value)> CommonSettings { get; init; } = [];

    /// <summary>Every line every process of the stack wrote so far.</summary>
    public IEnumerable<string> Output => _services.SelectMany(s => s.Output);

    public async Task InitializeAsync()
    {
        _environment = await ServiceEnvironment.CreateAsync();
        foreach (var name in Services)
        {
            var environment = name switch
            {
                // Room for the machines every test class leaves behind on the stack's one small host.
                "tenancy" => _environment.For(("Platform__Tenancy__AdminCredentialsFile", AdminCredentialsFile),
                    ("Platform__Tenancy__DefaultGuardrails__ReservedHostMemoryMiB", "1024"),
                    ("Platform__Tenancy__DefaultGuardrails__MaxMachinesPerHost", "1000"),
                    ("Platform__Tenancy__DefaultGuardrails__MaxVcpuOvercommit", "64"),
                    // Every machine a test class makes counts against its tenant's quota now: room for all of them.
                    ("Platform__Tenancy__DefaultQuota__Machines", "1000"),
                    ("Platform__Tenancy__DefaultQuota__Vcpus", "4000"),
                    ("Platform__Tenancy__DefaultQuota__MemoryMiB", "4000000")),
                "provisioning" => _environment.For(
                    ("Platform__Provisioning__DefaultGuardrails__ReservedHostMemoryMiB", "1024"),
                    ("Platform__Provisioning__DefaultGuardrails__MaxMachinesPerHost", "1000"),
                    ("Platform__Provisioning__DefaultGuardrails__MaxVcpuOvercommit", "64"),
                    ("Platform__Provisioning__Saga__StepTimeout", "00:00:10"),
                    ("Platform__Provisioning__Saga__LaunchTimeout", "00:01:30"),
                    // A snapshot whose host is down fails within a test's patience (MachineSnapshotTests).
                    ("Platform__Provisioning__Snapshots__SaveTimeout", "00:00:15")),
                // Test receivers listen on loopback over plain http; retries are quick so failures show fast.
                "telemetry" => _environment.For(
                    ("Platform__Telemetry__Webhooks__RequireHttps", "false"),
                    ("Platform__Telemetry__Webhooks__AllowPrivateAddresses", "true"),
                    ("Platform__Telemetry__Webhooks__MaxAttempts", "6"),
                    ("Platform__Telemetry__Webhooks__InitialBackoff", "00:00:00.100"),
                    ("Platform__Telemetry__Webhooks__MaxBackoff", "00:00:00.500"),
                    // Tests look at rollups and retention within seconds.
                    ("Platform__Telemetry__Metrics__RollupInterval", "00:00:01"),
                    // Off unless a test's tenant turns it on: other tests fail machines on purpose and look at them failed.
                    ("Platform__Telemetry__Healing__Enabled", "false"),
                    ("Platform__Telemetry__Broker__ManagementUrl", BrokerManagementUrl)),
                // A tunnel has 15 s for its first handshake (an exit node that admits it at once answers within 5), judged every second.
                "networking" => _environment.For(
                    ("Platform__Networking__Tunnels__FirstHandshakeWithin", "00:00:15"),
                    ("Platform__Networking__Tunnels__CheckInterval", "00:00:01")),
                _ => _environment.For(),
            };
            foreach (var (key, value) in CommonSettings.Concat(ServiceSettings.Where(setting => setting.Service == name).Select(setting => (setting.Key, setting.Value))))
            {
                environment[key] = value;
            }

            _serviceEnvironments[name] = environment;
            _services.Add(ServiceProcess.Start(name, environment));
        }

        var addresses = await Task.WhenAll(_services.Select(s => s.WaitUntilReadyAsync()));
        Addresses = Services.Zip(addresses).ToArray();
        _agentEnvironment = _environment.For(
        [
            ("Platform__Agent__StatePath", AgentStatePath),
            ("Platform__Agent__TemplatesPath", TestEnvironment.MicroVmTemplates),
            ("Platform__Agent__MicroVmRunPath", MicroVmRunPath),
            .. _drivers.Select((driver, i) => ($"Platform__Agent__Drivers__{i}", driver)),
            ("Platform__Agent__Simulated__LaunchLatencyMs", "20"),
            ("Platform__Agent__ReportInterval", "00:00:02"),
            ("Platform__Agent__MetricsInterval", "00:00:01"),
            ("Platform__Agent__HeartbeatInterval", "00:00:01"),
            .. CommonSettings,
            .. _agentSettings,
        ]);
        HostAgent = ServiceProcess.Start("host-agent", _agentEnvironment);
        await HostAgent.WaitUntilReadyAsync();
        Gateway = GatewayTests.StartGateway(Addresses, [.. CommonSettings]);
        _services.Add(Gateway);
        await Gateway.WaitUntilReadyAsync();
        await Eventually.TrueAsync(() => File.Exists(AdminCredentialsFile), TimeSpan.FromSeconds(30), "tenancy writes the first admin's credentials");
        _supervising = SuperviseAsync(_stopSupervising.Token);
    }

    /// <summary>
    /// As <c>./platform</c> does: a service that ends asking to be started again (exit code 75, see
    /// <c>BusWatchdog</c>) is started again on its port.
    /// </summary>
    private async Task SuperviseAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(500, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            // Read while no restart replaces a process: a process being replaced is disposed, and asking it anything throws.
            string[] asking;
            await _restarting.WaitAsync(CancellationToken.None);
            try
            {
                asking = Services.Where(name => _services.Single(s => s.Service == name) is { HasExited: true, ExitCode: 75 }).ToArray();
            }
            finally
            {
                _restarting.Release();
            }

            foreach (var service in asking)
            {
                await RestartAsync(service, crash: false);
            }

            if (HostAgent is { HasExited: true, ExitCode: 75 })
            {
                await CrashAndRestartHostAgentAsync();
            }
        }
    }

    /// <summary>The host agent crashes (SIGKILL to it alone: its machines' processes live on) and a new one starts on its state.</summary>
    /// <param name="whileDown">What happens on the host between the crash and the restart.</param>
    public async Task CrashAndRestartHostAgentAsync(Action? whileDown = null)
    {
        await HostAgent!.KillAsync(entireProcessTree: false);
        try
        {
            whileDown?.Invoke();
        }
        finally
        {
            // Whatever happened meanwhile, the stack's later tests get an agent.
            HostAgent = ServiceProcess.Start("host-agent", _agentEnvironment);
            await HostAgent.WaitUntilReadyAsync();
        }
    }

    /// <summary>
    /// A service crashes (SIGKILL, as a power cut or the OOM killer would) and starts again on the same port and state;
    /// the host agent crashes alone (its machines' processes live on), as in <see cref="CrashAndRestartHostAgentAsync"/>.
    /// </summary>
    public async Task CrashAndRestartAsync(string service)
    {
        if (service == "host-agent")
        {
            await CrashAndRestartHostAgentAsync();
            return;
        }

        await RestartAsync(service, crash: true);
    }

    private async Task RestartAsync(string service, bool crash)
    {
        await _restarting.WaitAsync();
        try
        {
            var index = _services.FindIndex(s => s.Service == service);
            var previous = _services[index];
            var address = await previous.Address;
            if (crash)
            {
                await previous.KillAsync();
            }

            await previous.DisposeAsync();
            var environment = new Dictionary<string, string>(_serviceEnvironments[service]) { ["ASPNETCORE_URLS"] = address.GetLeftPart(UriPartial.Authority) };
            _services[index] = ServiceProcess.Start(service, environment);
            await _services[index].WaitUntilReadyAsync(TimeSpan.FromSeconds(120));
        }
        finally
        {
            _restarting.Release();
        }
    }

    public async Task<HttpClient> AnonymousAsync() => new() { BaseAddress = await Gateway.Address };

    public async Task<HttpClient> LoginAsync(string username, string password)
    {
        using var anonymous = await AnonymousAsync();
        var response = await anonymous.PostAsJsonAsync("/api/v1/auth/token", new { username, password });
        response.EnsureSuccessStatusCode();
        var token = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("accessToken").GetString()!;
        return (await AnonymousAsync()).WithToken(token);
    }

    public async Task<HttpClient> AdminAsync()
    {
        var credentials = JsonDocument.Parse(await File.ReadAllTextAsync(AdminCredentialsFile)).RootElement;
        return await LoginAsync(credentials.GetProperty("username").GetString()!, credentials.GetProperty("password").GetString()!);
    }


    public async Task DisposeAsync()
    {
        await _stopSupervising.CancelAsync();
        await _supervising;
        // A stopped agent leaves its machines running for its next start, unless told to remove them, as
        // './platform down --machines' tells it: then it stops them and removes their namespaces, cgroups and run files.
        if (HostAgent is { } agent)
        {
            if (!agent.HasExited)
            {
                await File.WriteAllTextAsync(Path.Combine(AgentStatePath, "remove-machines-on-stop"), "");
            }

            await agent.StopAsync(TimeSpan.FromSeconds(60));
            await agent.DisposeAsync();
        }
        await new DisposeAll(_services).DisposeAsync();
        if (_environment is not null)
        {
            await _environment.DisposeAsync();
        }

        File.Delete(AdminCredentialsFile);
        foreach (var directory in new[] { AgentStatePath, MicroVmRunPath }.Where(Directory.Exists))
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
