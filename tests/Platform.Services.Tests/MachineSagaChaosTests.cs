using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.Services.Tests;

/// <summary>
/// N machine creations (simulated driver, some failing their launch) while service processes are killed with SIGKILL
/// and started again at random, and the broker once drops every connection; then an invariant checker compares every
/// store and the host: each creation ended ready or failed-and-undone, nothing is held without a live owner, no machine
/// was made twice, every machine's audit trail is complete. Then every machine is destroyed and nothing is left.
/// N is <c>PLATFORM_CHAOS_MACHINES</c> (200 by default).
/// </summary>
public sealed class MachineSagaChaosTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly string[] Victims = ["provisioning", "networking", "tenancy", "telemetry", "host-agent"];
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(int.TryParse(System.Environment.GetEnvironmentVariable("PLATFORM_CHAOS_SETTLE_SECONDS"), out var seconds) ? seconds : 300);

    // The sandbox driver only lends its template (sandbox-host) to the simulated machines.
    private readonly PlatformStack _stack = new(["sandbox", "simulated"],
        ("Platform__Agent__Simulated__FailureRate", "0.1"),
        ("Platform__Agent__Simulated__LaunchLatencyMs", "30"))
    {
        // Short deadlines so that what a crash lost is issued again within seconds; more attempts than restarts take.
        ServiceSettings =
        [
            ("provisioning", "Platform__Provisioning__Saga__StepTimeout", "00:00:03"),
            ("provisioning", "Platform__Provisioning__Saga__LaunchTimeout", "00:00:05"),
            ("provisioning", "Platform__Provisioning__Saga__MaxAttempts", "8"),
            // Simulated machines take no CPU: room for all of them on the stack's one small host.
            ("provisioning", "Platform__Provisioning__DefaultGuardrails__MaxVcpuOvercommit", "1000"),
            ("tenancy", "Platform__Tenancy__DefaultGuardrails__MaxVcpuOvercommit", "1000"),
        ],
    };

    public Task InitializeAsync() => _stack.InitializeAsync();

    public Task DisposeAsync() => _stack.DisposeAsync();

    [Fact]
    public async Task Creations_survive_killed_services_and_a_broker_that_drops_its_connections_and_every_store_agrees_afterwards()
    {
        var count = int.TryParse(System.Environment.GetEnvironmentVariable("PLATFORM_CHAOS_MACHINES"), out var n) ? n : 200;
        using var admin = await _stack.AdminAsync();
        var (tenantId, tenant) = await admin.CreateTenantWithAdminAsync();
        tenant.Timeout = TimeSpan.FromSeconds(30);
        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync($"/api/v1/tenants/{tenantId}/quotas",
            new { machines = count * 2, vcpus = count * 2, memoryMiB = count * 128, diskMiB = 0, tunnels = 0, portForwards = 0 })).StatusCode);

        // Creations, each retried with its Idempotency-Key until accepted, while the chaos runs.
        var machines = new ConcurrentDictionary<string, Guid>();
        using var chaosStop = new CancellationTokenSource();
        var crashes = new List<string>();
        var chaos = RunChaosAsync(crashes, chaosStop.Token);
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
        {
            var key = $"chaos-{i}";
            machines[key] = await AcceptedAsync(tenant, HttpMethod.Post, "/api/v1/machines", key, new { name = $"chaos-{i}", kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64 });
        });
        await chaosStop.CancelAsync();
        await chaos;
        output.WriteLine($"{count} creations accepted; crashes: {string.Join(", ", crashes)}");
        Assert.Equal(count, machines.Values.Distinct().Count());

        // Every creation ends: ready, or failed with what it took given back.
        var outcomes = new Dictionary<Guid, (string State, string? Error)>();
        try
        {
            await Eventually.TrueAsync(async () =>
            {
                outcomes = await StatesAsync(tenant);
                return machines.Values.All(id => outcomes.TryGetValue(id, out var s) && s.State is not ("creating" or "destroying"));
            }, Settle, "every creation ends");
        }
        catch (TimeoutException)
        {
            await DiagnoseAsync(tenant, outcomes);
            throw;
        }
        Assert.Equal(count, outcomes.Count);
        var created = outcomes.Where(o => o.Value.Error?.StartsWith("creation failed", StringComparison.Ordinal) != true).Select(o => o.Key).ToHashSet();
        var undone = outcomes.Keys.Except(created).ToHashSet();
        output.WriteLine($"{created.Count} created ({outcomes.Count(o => o.Value.State == "failed" && created.Contains(o.Key))} of them failed later, when an agent crash stopped them), {undone.Count} failed and undone");
        Assert.All(undone, id => Assert.Equal("failed", outcomes[id].State));
        Assert.NotEmpty(undone);

        await AssertStoresAgreeAsync(tenant, tenantId, created, machines.Values.ToHashSet());

        // The audit trail of every machine holds its request and how its creation ended.
        try
        {
            var unaudited = machines.Values.ToHashSet();
            await Eventually.TrueAsync(async () =>
            {
                foreach (var id in unaudited.ToList())
                {
                    var types = await AuditTypesAsync(tenant, id);
                    if (types.Contains("MachineRequested") && (types.Contains("MachineRunning") || types.Contains("MachineFailed")))
                    {
                        unaudited.Remove(id);
                    }
                }

                return unaudited.Count == 0;
            }, Settle, "every machine's audit trail is complete");
        }
        catch (TimeoutException)
        {
            await DiagnoseAsync(tenant, outcomes);
            throw;
        }

        // Destroying gives everything back, whatever state the machine ended in.
        await Parallel.ForEachAsync(machines.Values, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (id, _) =>
            await AcceptedAsync(tenant, HttpMethod.Delete, $"/api/v1/machines/{id}", null, null));
        await Eventually.TrueAsync(async () => (await StatesAsync(tenant)).Count == 0, Settle, "every machine is destroyed");
        await AssertStoresAgreeAsync(tenant, tenantId, new HashSet<Guid>(), machines.Values.ToHashSet());
    }

    /// <summary>What a failing run shows: flows still open, the queues, and how each service is.</summary>
    private async Task DiagnoseAsync(HttpClient tenant, IReadOnlyDictionary<Guid, (string State, string? Error)> outcomes)
    {
        // Which part lost a flow: a stuck machine with no saga row whose request lies beyond the relay's checkpoint was never
        // published; one below it was published and then lost on the way to (or in) the saga.
        var stuckIds = outcomes.Where(o => o.Value.State is "creating" or "destroying").Select(o => o.Key).ToArray();
        var database = _stack.Environment.Database;
        var checkpoint = await database.ScalarAsync<long>("SELECT coalesce((SELECT position FROM provisioning.checkpoints WHERE name = 'relay'), 0)");
        output.WriteLine($"{stuckIds.Length} stuck; provisioning's relay checkpoint {checkpoint}, head {await database.ScalarAsync<long>("SELECT coalesce(max(seq_id), 0) FROM provisioning.mt_events")}");
        foreach (var id in stuckIds.Take(20))
        {
            var requested = await database.ScalarAsync<long>($"SELECT coalesce((SELECT seq_id FROM provisioning.mt_events WHERE stream_id = 'machine-{id}' AND version = 1), 0)");
            var sagas = await database.ScalarAsync<long>($"SELECT count(*) FROM provisioning.sagas WHERE correlation_id = '{id}'");
            output.WriteLine($"  {id}: requested at position {requested} ({(requested > checkpoint ? "not yet relayed" : "relayed")}), saga rows {sagas}");
        }

        foreach (var stuck in outcomes.Where(o => o.Value.State is "creating" or "destroying").Take(5))
        {
            var machine = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{stuck.Key}");
            output.WriteLine($"stuck {stuck.Key}: {machine}");
            output.WriteLine($"  operation: {await tenant.GetStringAsync($"/api/v1/operations/{machine.GetProperty("pendingOperation").GetProperty("id").GetGuid()}")}");
        }

        output.WriteLine(await _stack.Environment.VirtualHost.QueueStatsAsync());
        foreach (var process in PlatformStack.Services.Select(_stack.Service).Append(_stack.HostAgent!))
        {
            var service = process.Service;
            output.WriteLine($"{service}: {(process.HasExited ? $"exited with {process.ExitCode}" : "running")}; last lines:\n  {string.Join("\n  ", process.Output.Where(l => !l.Contains("\"LogLevel\":\"Information\"", StringComparison.Ordinal)).TakeLast(6).Select(l => l.Length > 400 ? l[..400] : l))}");
        }

        output.WriteLine(string.Join("\n", _stack.Output.Where(l => l.Contains("\"LogLevel\":\"Error\"", StringComparison.Ordinal) || l.Contains("\"LogLevel\":\"Critical\"", StringComparison.Ordinal)).TakeLast(10)));
    }

    /// <summary>Kills a random service every few seconds and starts it again; once, the broker drops every connection.</summary>
    private async Task RunChaosAsync(List<string> crashes, CancellationToken stop)
    {
        var brokerDropped = false;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(1500, 3500)), stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            if (!brokerDropped && crashes.Count >= 3)
            {
                brokerDropped = true;
                crashes.Add($"broker ({await _stack.Environment.VirtualHost.CloseConnectionsAsync()} connections)");
                continue;
            }

            var victim = Victims[Random.Shared.Next(Victims.Length)];
            crashes.Add(victim);
            await _stack.CrashAndRestartAsync(victim);
        }

        if (!brokerDropped)
        {
            crashes.Add($"broker ({await _stack.Environment.VirtualHost.CloseConnectionsAsync()} connections)");
        }
    }

    private async Task AssertStoresAgreeAsync(HttpClient tenant, Guid tenantId, IReadOnlySet<Guid> created, IReadOnlySet<Guid> all)
    {
        // Tenancy: the quota holds exactly the created machines; the inventory lists exactly them.
        await Eventually.TrueAsync(async () =>
            (await WithRetriesAsync(() => tenant.GetFromJsonAsync<JsonElement>("/api/v1/quotas"))).GetProperty("used").GetProperty("machines").GetInt32() == created.Count,
            Settle, "the quota holds the created machines, no more");
        Assert.Equal(created.Order(), (await PagedIdsAsync(tenant, $"/api/v1/tenants/{tenantId}/inventory", "machineId")).Order());

        // Networking: one lease per created machine, none for any other, no address twice.
        var leases = (await WithRetriesAsync(() => tenant.GetFromJsonAsync<JsonElement>("/api/v1/networks"))).GetProperty("items").EnumerateArray()
            .SelectMany(n => n.GetProperty("leases").EnumerateArray()).ToList();
        Assert.Equal(created.Order(), leases.Select(l => l.GetProperty("machineId").GetGuid()).Order());
        Assert.Equal(leases.Count, leases.Select(l => l.GetProperty("address").GetString()).Distinct().Count());

        // The host: the agent records exactly the created machines.
        var recorded = Directory.EnumerateFiles(Path.Combine(_stack.AgentStatePath, "machines"), "*.json").Select(f => Guid.Parse(Path.GetFileNameWithoutExtension(f))).ToHashSet();
        Assert.Equal(created.Order(), recorded.Order());

        // Provisioning: every flow still open is a created machine waiting for its destroy; none is stuck midway.
        await using var connection = new NpgsqlConnection(_stack.Environment.Database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT correlation_id, state->>'currentState' FROM provisioning.sagas WHERE saga_type = 'MachineSagaState'", connection);
        var flows = new Dictionary<Guid, string>();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                flows[reader.GetGuid(0)] = reader.GetString(1);
            }
        }

        Assert.All(flows.Values, state => Assert.Equal("Ready", state));
        Assert.Equal(created.Order(), flows.Keys.Intersect(all).Order());
    }

    private static async Task<Dictionary<Guid, (string State, string? Error)>> StatesAsync(HttpClient tenant)
    {
        var states = new Dictionary<Guid, (string, string?)>();
        string? cursor = null;
        do
        {
            var page = await WithRetriesAsync(() => tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines?limit=100{(cursor is null ? "" : $"&cursor={cursor}")}"));
            foreach (var machine in page.GetProperty("items").EnumerateArray())
            {
                states[machine.GetProperty("id").GetGuid()] = (machine.GetProperty("state").GetString()!, machine.TryGetProperty("lastError", out var error) ? error.GetString() : null);
            }

            cursor = page.TryGetProperty("nextCursor", out var next) && next.ValueKind == JsonValueKind.String ? next.GetString() : null;
        }
        while (cursor is not null);

        return states;
    }

    private static async Task<List<Guid>> PagedIdsAsync(HttpClient client, string path, string idProperty)
    {
        var ids = new List<Guid>();
        string? cursor = null;
        do
        {
            var page = await WithRetriesAsync(() => client.GetFromJsonAsync<JsonElement>($"{path}?limit=100{(cursor is null ? "" : $"&cursor={cursor}")}"));
            ids.AddRange(page.GetProperty("items").EnumerateArray().Select(e => e.GetProperty(idProperty).GetGuid()));
            cursor = page.TryGetProperty("nextCursor", out var next) && next.ValueKind == JsonValueKind.String ? next.GetString() : null;
        }
        while (cursor is not null);

        return ids;
    }

    private static async Task<HashSet<string>> AuditTypesAsync(HttpClient tenant, Guid machineId)
    {
        var page = await WithRetriesAsync(() => tenant.GetFromJsonAsync<JsonElement>($"/api/v1/audit?stream=machine-{machineId}&limit=100"));
        return page.GetProperty("items").EnumerateArray().Select(e => e.GetProperty("type").GetString()!).ToHashSet();
    }

    /// <summary>Sends until the platform accepts (a crashed service answers 502 through the gateway, or nothing): the key makes a repeat harmless.</summary>
    private static async Task<Guid> AcceptedAsync(HttpClient tenant, HttpMethod method, string path, string? idempotencyKey, object? body)
    {
        var deadline = DateTime.UtcNow + Settle;
        while (true)
        {
            try
            {
                using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
                if (idempotencyKey is not null)
                {
                    request.Headers.Add("Idempotency-Key", idempotencyKey);
                }

                using var response = await tenant.SendAsync(request);
                if (response.StatusCode == HttpStatusCode.Accepted)
                {
                    return body is null ? Guid.Empty : (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
                }

                // A repeated DELETE whose first answer was lost finds the machine destroying already.
                if (method == HttpMethod.Delete && response.StatusCode == HttpStatusCode.Conflict)
                {
                    return Guid.Empty;
                }

                Assert.True((int)response.StatusCode >= 500 || response.StatusCode == HttpStatusCode.TooManyRequests,
                    $"{method} {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            }
            catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException)
            {
                // The gateway or the service is down for a moment.
            }

            Assert.True(DateTime.UtcNow < deadline, $"{method} {path} was never accepted");
            await Task.Delay(500);
        }
    }

    /// <summary>Reads again while the gateway answers 429 (the tenant's rate limit) or a service is restarting (5xx, no answer).</summary>
    private static async Task<T> WithRetriesAsync<T>(Func<Task<T>> read)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await read();
            }
            catch (Exception exception) when (attempt < 120 && exception is HttpRequestException or TaskCanceledException)
            {
                await Task.Delay(500);
            }
        }
    }
}
