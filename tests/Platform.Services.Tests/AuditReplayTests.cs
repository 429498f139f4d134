using System.Net.Http.Json;
using System.Text.Json;
using Platform.Contracts.Tenancy;
using Platform.Testing;

namespace Platform.Services.Tests;

[Collection(StackCollection.Name)]
public sealed class AuditReplayTests(PlatformStack stack)
{
    private static readonly Dictionary<string, string> StateAfter = new()
    {
        ["MachineRequested"] = "creating",
        ["MachineStartRequested"] = "starting",
        ["MachineStopRequested"] = "stopping",
        ["MachineRestartRequested"] = "restarting",
        ["MachineRecreateRequested"] = "restarting",
        ["MachineDestroyRequested"] = "destroying",
        ["MachineRunning"] = "running",
        ["MachineStopped"] = "stopped",
        ["MachineFailed"] = "failed",
        ["MachineDestroyed"] = "destroyed",
    };

    [Fact]
    public async Task Every_machine_state_replayed_from_the_audit_log_equals_the_state_provisioning_holds()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var running = await tenant.CreateMachineAsync(new { name = "kept", kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64 });
        var stopped = await tenant.CreateMachineAsync(new { name = "halted", kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64 });
        var destroyed = await tenant.CreateMachineAsync(new { name = "gone", kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64 });
        foreach (var id in new[] { running, stopped, destroyed })
        {
            await tenant.WaitForMachineAsync(id, "running");
        }

        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{stopped}/stop");
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{destroyed}");
        await tenant.WaitForMachineAsync(stopped, "stopped");
        await tenant.WaitForMachineAsync(destroyed, "destroyed");

        // Every machine of every test so far, as provisioning holds it and as the audit log replays it.
        await Eventually.TrueAsync(async () =>
        {
            var held = await HeldMachineStatesAsync(admin);
            var replayed = await ReplayedMachineStatesAsync(admin);
            return held.Count >= 3 && held.OrderBy(e => e.Key).SequenceEqual(replayed.OrderBy(e => e.Key));
        }, TimeSpan.FromSeconds(30), "the audit log replays to the machine states provisioning holds");
        var replayedNow = await ReplayedMachineStatesAsync(admin);
        Assert.Equal(("running", "stopped", "destroyed"), (replayedNow[running], replayedNow[stopped], replayedNow[destroyed]));
    }

    private static async Task<Dictionary<Guid, string>> HeldMachineStatesAsync(HttpClient admin)
    {
        var states = new Dictionary<Guid, string>();
        foreach (var query in new[] { "", "state=destroyed&" })
        {
            string? cursor = null;
            do
            {
                var page = await admin.GetFromJsonAsync<JsonElement>($"/api/v1/machines?{query}limit=500{(cursor is null ? "" : $"&cursor={cursor}")}");
                foreach (var machine in page.GetProperty("items").EnumerateArray())
                {
                    states[machine.GetProperty("id").GetGuid()] = machine.GetProperty("state").GetString()!;
                }

                cursor = page.TryGetProperty("nextCursor", out var next) ? next.GetString() : null;
            }
            while (cursor is not null);
        }

        return states;
    }

    /// <summary>A second, independent fold: each machine's state is what its last event in the audit log says.</summary>
    private static async Task<Dictionary<Guid, string>> ReplayedMachineStatesAsync(HttpClient admin)
    {
        var states = new Dictionary<Guid, string>();
        string? cursor = "0";
        while (cursor is not null)
        {
            var page = await admin.GetFromJsonAsync<JsonElement>($"/api/v1/audit?type={string.Join(',', StateAfter.Keys)}&limit=1000&after={cursor}");
            foreach (var entry in page.GetProperty("items").EnumerateArray())
            {
                states[entry.GetProperty("data").GetProperty("machineId").GetGuid()] = StateAfter[entry.GetProperty("type").GetString()!];
            }

            cursor = page.TryGetProperty("nextCursor", out var next) ? next.GetString() : null;
        }

        return states;
    }

    [Fact]
    public async Task The_machine_inventory_rebuilt_from_the_audit_log_equals_the_live_one()
    {
        using var admin = await stack.AdminAsync();
        var tenants = new[] { (await admin.CreateTenantWithAdminAsync()).TenantId, (await admin.CreateTenantWithAdminAsync()).TenantId };
        await using var bus = await TestBus.StartAsync(stack.Environment.VirtualHost, "replay-test", _ => { }, _ => { });
        var machines = Enumerable.Range(0, 12).Select(i => (Id: Guid.CreateVersion7(), Tenant: tenants[i % 2], Name: $"m-{i}")).ToArray();
        foreach (var machine in machines)
        {
            await bus.Bus.Publish(new RegisterMachine(machine.Id, machine.Tenant, machine.Name, "sandbox", "user:replay"));
        }

        foreach (var machine in machines.Where((_, i) => i % 3 == 0))
        {
            await Eventually.TrueAsync(async () => (await LiveAsync(admin, machine.Tenant)).ContainsKey(machine.Id), TimeSpan.FromSeconds(30), "registered before it is unregistered");
            await bus.Bus.Publish(new UnregisterMachine(machine.Id, machine.Tenant));
        }

        var expectedLive = machines.Where((_, i) => i % 3 != 0).Select(m => m.Id).ToHashSet();
        await Eventually.TrueAsync(async () =>
        {
            var live = await LiveInventoryAsync(admin, tenants);
            return live.Keys.ToHashSet().SetEquals(expectedLive);
        }, TimeSpan.FromSeconds(30), "the live inventory settles");
        await Eventually.TrueAsync(async () => (await ReplayAsync(admin, tenants)).Keys.ToHashSet().SetEquals(expectedLive), TimeSpan.FromSeconds(30), "the audit log has caught up");

        var rebuilt = await ReplayAsync(admin, tenants);
        var liveNow = await LiveInventoryAsync(admin, tenants);

        Assert.Equal(liveNow.OrderBy(e => e.Key), rebuilt.OrderBy(e => e.Key));
    }

    /// <summary>Folds every MachineRegistered and MachineUnregistered of the audit log, from position 0, page by page.</summary>
    private static async Task<Dictionary<Guid, (Guid Tenant, string Name, string Owner)>> ReplayAsync(HttpClient admin, Guid[] tenants)
    {
        var inventory = new Dictionary<Guid, (Guid Tenant, string Name, string Owner)>();
        string? cursor = "0";
        while (cursor is not null)
        {
            var page = await admin.GetFromJsonAsync<JsonElement>($"/api/v1/audit?type=MachineRegistered,MachineUnregistered&limit=50&after={cursor}");
            foreach (var entry in page.GetProperty("items").EnumerateArray())
            {
                var data = entry.GetProperty("data");
                var machine = data.GetProperty("machineId").GetGuid();
                if (entry.GetProperty("type").GetString() == "MachineRegistered")
                {
                    inventory[machine] = (data.GetProperty("tenantId").GetGuid(), data.GetProperty("name").GetString()!, data.GetProperty("owner").GetString()!);
                }
                else
                {
                    inventory.Remove(machine);
                }
            }

            cursor = page.TryGetProperty("nextCursor", out var next) ? next.GetString() : null;
        }

        return inventory.Where(e => tenants.Contains(e.Value.Tenant)).ToDictionary();
    }

    private static async Task<Dictionary<Guid, (Guid Tenant, string Name, string Owner)>> LiveInventoryAsync(HttpClient admin, Guid[] tenants)
    {
        var inventory = new Dictionary<Guid, (Guid Tenant, string Name, string Owner)>();
        foreach (var tenant in tenants)
        {
            foreach (var (id, entry) in await LiveAsync(admin, tenant))
            {
                inventory[id] = entry;
            }
        }

        return inventory;
    }

    private static async Task<Dictionary<Guid, (Guid Tenant, string Name, string Owner)>> LiveAsync(HttpClient admin, Guid tenant) =>
        (await admin.GetFromJsonAsync<JsonElement>($"/api/v1/tenants/{tenant}/inventory?limit=500")).GetProperty("items").EnumerateArray()
            .ToDictionary(e => e.GetProperty("machineId").GetGuid(), e => (e.GetProperty("tenantId").GetGuid(), e.GetProperty("name").GetString()!, e.GetProperty("owner").GetString()!));
}
