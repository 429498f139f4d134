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
public sealed class QuotaTests(PlatformStack stack)
{
    private static readonly QuotaResources OneSmallMachine = new(Machines: 1, Vcpus: 1, MemoryMiB: 256, DiskMiB: 1024, Tunnels: 0, PortForwards: 0);

    [Fact]
    public async Task Fifty_parallel_reservations_against_a_quota_of_ten_machines_reserve_exactly_ten_and_reject_forty_naming_the_limit()
    {
        using var admin = await stack.AdminAsync();
        var (tenant, _) = await admin.CreateTenantWithAdminAsync();
        var limits = new QuotaResources(Machines: 10, Vcpus: 1000, MemoryMiB: 1_000_000, DiskMiB: 10_000_000, Tunnels: 10, PortForwards: 10);
        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync($"/api/v1/tenants/{tenant}/quotas", limits)).StatusCode);
        var replies = new Replies(tenant);
        await using var bus = await TestBus.StartAsync(stack.Environment.VirtualHost, "quota-test", s => s.AddSingleton(replies), c => c.AddConsumer<RepliesConsumer>());
        var machines = Enumerable.Range(0, 50).Select(_ => Guid.CreateVersion7()).ToArray();

        await Task.WhenAll(machines.Select(machine => bus.Bus.Publish(new ReserveQuota(machine, tenant, OneSmallMachine))));
        await Eventually.TrueAsync(() => machines.All(replies.Answered), TimeSpan.FromSeconds(60), "every reservation is answered");

        var reserved = machines.Where(m => replies.Reserved.ContainsKey(m)).ToArray();
        var rejected = machines.Select(m => replies.Rejected.GetValueOrDefault(m)).OfType<QuotaRejected>().ToArray();
        Assert.Equal(10, reserved.Length);
        Assert.Equal(40, rejected.Length);
        Assert.All(rejected, r => Assert.Equal(("machines", 10L, 1L, 10L), (r.Limit, r.Used, r.Requested, r.Max)));
        Assert.Equal(10, await UsedMachinesAsync(admin, tenant));

        // The same command again (a redelivery, or a saga re-issuing it) reserves nothing more.
        replies.Forget(reserved[0]);
        await bus.Bus.Publish(new ReserveQuota(reserved[0], tenant, OneSmallMachine));
        await Eventually.TrueAsync(() => replies.Reserved.ContainsKey(reserved[0]), TimeSpan.FromSeconds(30), "the repeated command is answered");
        Assert.Equal(10, await UsedMachinesAsync(admin, tenant));

        // Releasing frees capacity for the next machine.
        await bus.Bus.Publish(new ReleaseQuota(reserved[1], tenant));
        await Eventually.TrueAsync(() => replies.Released.ContainsKey(reserved[1]), TimeSpan.FromSeconds(30), "the release is answered");
        var next = Guid.CreateVersion7();
        await bus.Bus.Publish(new ReserveQuota(next, tenant, OneSmallMachine));
        await Eventually.TrueAsync(() => replies.Answered(next), TimeSpan.FromSeconds(30), "the next reservation is answered");
        Assert.True(replies.Reserved.ContainsKey(next));
        Assert.Equal(10, await UsedMachinesAsync(admin, tenant));
    }

    [Fact]
    public async Task A_reservation_that_arrives_after_its_machine_gave_up_and_released_takes_no_quota()
    {
        using var admin = await stack.AdminAsync();
        var (tenant, _) = await admin.CreateTenantWithAdminAsync();
        var replies = new Replies(tenant);
        await using var bus = await TestBus.StartAsync(stack.Environment.VirtualHost, "quota-late-test", s => s.AddSingleton(replies), c => c.AddConsumer<RepliesConsumer>());
        var machine = Guid.CreateVersion7();

        // The flow stopped waiting for its reservation (tenancy was down) and released; the reservation was still queued.
        await bus.Bus.Publish(new ReleaseQuota(machine, tenant));
        await Eventually.TrueAsync(() => replies.Released.ContainsKey(machine), TimeSpan.FromSeconds(30), "the release is answered");
        await bus.Bus.Publish(new ReserveQuota(machine, tenant, OneSmallMachine));
        var later = Guid.CreateVersion7();
        await bus.Bus.Publish(new ReserveQuota(later, tenant, OneSmallMachine));
        await Eventually.TrueAsync(() => replies.Answered(later), TimeSpan.FromSeconds(30), "a reservation published after it is answered");

        Assert.False(replies.Answered(machine));
        Assert.Equal(1, await UsedMachinesAsync(admin, tenant));
    }

    [Fact]
    public async Task Quotas_are_set_by_a_platform_admin_read_by_the_tenant_and_validated()
    {
        using var admin = await stack.AdminAsync();
        var (tenant, tenantAdmin) = await admin.CreateTenantWithAdminAsync();

        var own = await tenantAdmin.GetFromJsonAsync<JsonElement>("/api/v1/quotas");
        var forbidden = await tenantAdmin.PutAsJsonAsync($"/api/v1/tenants/{tenant}/quotas", new QuotaResources(100, 100, 100, 100, 100, 100));
        var negative = await admin.PutAsJsonAsync($"/api/v1/tenants/{tenant}/quotas", new QuotaResources(-1, 1, 1, 1, 1, 1));

        Assert.Equal(tenant, own.GetProperty("tenantId").GetGuid());
        Assert.Equal(0, own.GetProperty("used").GetProperty("machines").GetInt32());
        await Problems.AssertAsync(forbidden, HttpStatusCode.Forbidden, "urn:platform:problem:forbidden");
        var problem = await Problems.AssertAsync(negative, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
        Assert.True(problem.GetProperty("errors").TryGetProperty("machines", out _));
    }

    private static async Task<int> UsedMachinesAsync(HttpClient admin, Guid tenant) =>
        (await admin.GetFromJsonAsync<JsonElement>($"/api/v1/tenants/{tenant}/quotas")).GetProperty("used").GetProperty("machines").GetInt32();

    public sealed class Replies(Guid tenant)
    {
        public Guid Tenant { get; } = tenant;

        public ConcurrentDictionary<Guid, QuotaReserved> Reserved { get; } = new();

        public ConcurrentDictionary<Guid, QuotaRejected> Rejected { get; } = new();

        public ConcurrentDictionary<Guid, QuotaReleased> Released { get; } = new();

        public bool Answered(Guid machine) => Reserved.ContainsKey(machine) || Rejected.ContainsKey(machine);

        public void Forget(Guid machine) => Reserved.TryRemove(machine, out _);
    }

    public sealed class RepliesConsumer(Replies replies) : IConsumer<QuotaReserved>, IConsumer<QuotaRejected>, IConsumer<QuotaReleased>
    {
        public Task Consume(ConsumeContext<QuotaReserved> context) => Record(context.Message.TenantId, () => replies.Reserved[context.Message.MachineId] = context.Message);

        public Task Consume(ConsumeContext<QuotaRejected> context) => Record(context.Message.TenantId, () => replies.Rejected[context.Message.MachineId] = context.Message);

        public Task Consume(ConsumeContext<QuotaReleased> context) => Record(context.Message.TenantId, () => replies.Released[context.Message.MachineId] = context.Message);

        private Task Record(Guid tenant, Action record)
        {
            if (tenant == replies.Tenant)
            {
                record();
            }

            return Task.CompletedTask;
        }
    }
}
