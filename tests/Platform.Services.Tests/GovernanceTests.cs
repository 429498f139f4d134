using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Platform.Contracts.Tenancy;
using Platform.Testing;

namespace Platform.Services.Tests;

[Collection(StackCollection.Name)]
public sealed class GovernanceTests(PlatformStack stack)
{
    [Fact]
    public async Task Host_guardrails_are_set_by_a_platform_admin_only_validated_and_published()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenantAdmin) = await admin.CreateTenantWithAdminAsync();
        var published = new ConcurrentQueue<HostGuardrailsSet>();
        await using var bus = await TestBus.StartAsync(stack.Environment.VirtualHost, "guardrails-test", s => s.AddSingleton(published), c => c.AddConsumer<GuardrailsConsumer>());
        var guardrails = new HostGuardrails(ReservedHostMemoryMiB: 2048, MaxMachinesPerHost: 33, MaxVcpuOvercommit: 2.5);
        var before = await admin.GetFromJsonAsync<HostGuardrails>("/api/v1/governance/guardrails");
        try
        {
            await SetAndCheckAsync(admin, tenantAdmin, published, guardrails);
        }
        finally
        {
            // The stack's other tests place machines on its one small host: give them back its room.
            await admin.PutAsJsonAsync("/api/v1/governance/guardrails", before);
        }
    }

    private static async Task SetAndCheckAsync(HttpClient admin, HttpClient tenantAdmin, ConcurrentQueue<HostGuardrailsSet> published, HostGuardrails guardrails)
    {
        var set = await admin.PutAsJsonAsync("/api/v1/governance/guardrails", guardrails);
        var read = await admin.GetFromJsonAsync<HostGuardrails>("/api/v1/governance/guardrails");
        var notAllowed = await tenantAdmin.GetAsync("/api/v1/governance/guardrails");
        var invalid = await admin.PutAsJsonAsync("/api/v1/governance/guardrails", guardrails with { MaxVcpuOvercommit = 0.5, MaxMachinesPerHost = 0 });

        Assert.Equal(HttpStatusCode.OK, set.StatusCode);
        Assert.Equal(guardrails, read);
        await Problems.AssertAsync(notAllowed, HttpStatusCode.Forbidden, "urn:platform:problem:forbidden");
        var problem = await Problems.AssertAsync(invalid, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        Assert.True(problem.GetProperty("errors").TryGetProperty("maxVcpuOvercommit", out _));
        Assert.True(problem.GetProperty("errors").TryGetProperty("maxMachinesPerHost", out _));
        await Eventually.TrueAsync(() => published.Any(p => p.Guardrails == guardrails), TimeSpan.FromSeconds(30), "the change is published for placement");
        Assert.Equal(guardrails, await admin.GetFromJsonAsync<HostGuardrails>("/api/v1/governance/guardrails"));
    }

    [Fact]
    public async Task A_machine_is_registered_once_however_often_the_command_comes_and_only_its_tenant_sees_it()
    {
        using var admin = await stack.AdminAsync();
        var (tenant, adminOfA) = await admin.CreateTenantWithAdminAsync();
        var (_, adminOfB) = await admin.CreateTenantWithAdminAsync();
        await using var bus = await TestBus.StartAsync(stack.Environment.VirtualHost, "inventory-test", _ => { }, _ => { });
        var machine = Guid.CreateVersion7();

        await bus.Bus.Publish(new RegisterMachine(machine, tenant, "web-1", "microvm", "user:someone"));
        await bus.Bus.Publish(new RegisterMachine(machine, tenant, "web-1", "microvm", "user:someone"));
        await Eventually.TrueAsync(async () => (await InventoryAsync(adminOfA, tenant)).Any(), TimeSpan.FromSeconds(30), "the machine is registered");
        await Task.Delay(500);

        var entry = Assert.Single(await InventoryAsync(adminOfA, tenant));
        Assert.Equal(machine, entry.GetProperty("machineId").GetGuid());
        Assert.Equal("user:someone", entry.GetProperty("owner").GetString());
        await Problems.AssertAsync(await adminOfB.GetAsync($"/api/v1/tenants/{tenant}/inventory"), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
        Assert.Equal(1L, await stack.Environment.Database.ScalarAsync<long>($"SELECT count(*) FROM tenancy.mt_events WHERE stream_id = 'inventory-{machine}'"));

        await bus.Bus.Publish(new UnregisterMachine(machine, tenant));
        await Eventually.TrueAsync(async () => !(await InventoryAsync(adminOfA, tenant)).Any(), TimeSpan.FromSeconds(30), "the machine leaves the inventory");
    }

    private static async Task<IReadOnlyList<JsonElement>> InventoryAsync(HttpClient client, Guid tenant) =>
        (await client.GetFromJsonAsync<JsonElement>($"/api/v1/tenants/{tenant}/inventory")).GetProperty("items").EnumerateArray().ToArray();

    public sealed class GuardrailsConsumer(ConcurrentQueue<HostGuardrailsSet> published) : IConsumer<HostGuardrailsSet>
    {
        public Task Consume(ConsumeContext<HostGuardrailsSet> context)
        {
            published.Enqueue(context.Message);
            return Task.CompletedTask;
        }
    }
}
