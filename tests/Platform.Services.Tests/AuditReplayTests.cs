using System.Net.Http.Json;
using System.Text.Json;
using Platform.Contracts.Tenancy;
using Platform.Testing;

namespace Platform.Services.Tests;

[Collection(StackCollection.Name)]
public sealed class AuditReplayTests(PlatformStack stack)
{
    [Fact]
    public async Task The_machine_inventory_rebuilt_from_the_audit_log_equals_the_live_one()
    {
        using var admin = await stack.AdminAsync();
        var tenants = new[] { (await ApiKeyTests.TenantWithAdminAsync(admin)).Tenant, (await ApiKeyTests.TenantWithAdminAsync(admin)).Tenant };
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
