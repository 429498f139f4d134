using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Platform.Contracts.Networking;
using Platform.Hosting.Security;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>
/// IPAM in a real networking process: a small default pool (10.99.0.0/28 in /29 tenant subnets: two
/// subnets of five machine addresses each) and a quarantine of two seconds, driven over the bus.
/// </summary>
public sealed class AddressingTests : IAsyncLifetime
{
    private readonly Replies _replies = new();
    private ServiceEnvironment _environment = null!;
    private ServiceProcess _networking = null!;
    private TestBus _bus = null!;

    public async Task InitializeAsync()
    {
        _environment = await ServiceEnvironment.CreateAsync();
        _networking = ServiceProcess.Start("networking", _environment.For(
            ("Platform__Networking__DefaultPool", "10.99.0.0/28"),
            ("Platform__Networking__SubnetPrefixLength", "29"),
            ("Platform__Networking__Quarantine", "00:00:02")));
        await _networking.WaitUntilReadyAsync();
        _bus = await TestBus.StartAsync(_environment.VirtualHost, "addressing-test", s => s.AddSingleton(_replies), c => c.AddConsumer<ReplyConsumer>());
    }

    public async Task DisposeAsync()
    {
        await _bus.DisposeAsync();
        await _networking.DisposeAsync();
        await _environment.DisposeAsync();
    }

    [Fact]
    public async Task A_subnet_gives_each_machine_its_own_address_never_the_network_gateway_or_broadcast_and_then_says_it_is_exhausted()
    {
        var tenant = Guid.CreateVersion7();
        var machines = Enumerable.Range(0, 6).Select(_ => Guid.CreateVersion7()).ToArray();

        await Task.WhenAll(machines.Select(m => _bus.Bus.Publish(new AllocateNetwork(m, tenant))));
        await Eventually.TrueAsync(() => machines.All(_replies.Answered), TimeSpan.FromSeconds(30), "every allocation is answered");

        var leases = machines.Select(m => _replies.Allocated.GetValueOrDefault(m)).OfType<NetworkAllocated>().ToArray();
        Assert.Equal(5, leases.Length);
        var subnet = IPNetwork.Parse(leases[0].Subnet);
        Assert.Equal(29, subnet.PrefixLength);
        Assert.All(leases, l => Assert.True(subnet.Contains(IPAddress.Parse(l.Address)), $"{l.Address} is inside {subnet}"));
        var lastOctets = leases.Select(l => (int)IPAddress.Parse(l.Address).GetAddressBytes()[3] - subnet.BaseAddress.GetAddressBytes()[3]).Order().ToArray();
        Assert.Equal([2, 3, 4, 5, 6], lastOctets); // .0 network, .1 gateway, .7 broadcast: never leased
        Assert.All(leases, l => Assert.Equal(subnet.BaseAddress.GetAddressBytes()[3] + 1, IPAddress.Parse(l.Gateway).GetAddressBytes()[3]));
        var refused = Assert.Single(_replies.Refused.Values);
        Assert.Equal("urn:platform:problem:subnet-exhausted", refused.ProblemType);

        await _bus.Bus.Publish(new AllocateNetwork(leases[0].MachineId, tenant));
        await Eventually.TrueAsync(() => _replies.AllocatedCount(leases[0].MachineId) == 2, TimeSpan.FromSeconds(30), "a repeated command is answered with the same lease");
        Assert.Equal(leases[0].Address, _replies.Allocated[leases[0].MachineId].Address);
    }

    [Fact]
    public async Task A_released_address_rests_in_quarantine_before_it_is_leased_again()
    {
        var tenant = Guid.CreateVersion7();
        var machines = Enumerable.Range(0, 5).Select(_ => Guid.CreateVersion7()).ToArray();
        foreach (var machine in machines)
        {
            await _bus.Bus.Publish(new AllocateNetwork(machine, tenant));
        }

        await Eventually.TrueAsync(() => machines.All(_replies.Allocated.ContainsKey), TimeSpan.FromSeconds(30), "the subnet is full");
        var released = _replies.Allocated[machines[2]];
        await _bus.Bus.Publish(new ReleaseNetwork(machines[2], tenant));
        await Eventually.TrueAsync(() => _replies.Released.ContainsKey(machines[2]), TimeSpan.FromSeconds(30), "the release is announced");

        var early = Guid.CreateVersion7();
        await _bus.Bus.Publish(new AllocateNetwork(early, tenant));
        await Eventually.TrueAsync(() => _replies.Answered(early), TimeSpan.FromSeconds(30), "the early allocation is answered");
        Assert.Equal("urn:platform:problem:subnet-exhausted", _replies.Refused[early].ProblemType);

        await Task.Delay(TimeSpan.FromSeconds(2.5));
        var later = Guid.CreateVersion7();
        await _bus.Bus.Publish(new AllocateNetwork(later, tenant));
        await Eventually.TrueAsync(() => _replies.Answered(later), TimeSpan.FromSeconds(30), "the later allocation is answered");
        Assert.Equal(released.Address, _replies.Allocated[later].Address);
    }

    [Fact]
    public async Task When_every_pool_is_carved_a_new_tenant_is_refused_until_an_admin_adds_a_pool_and_bad_pools_are_refused()
    {
        var first = Guid.CreateVersion7();
        var second = Guid.CreateVersion7();
        var third = Guid.CreateVersion7();
        foreach (var (machine, tenant) in new[] { (Guid.CreateVersion7(), first), (Guid.CreateVersion7(), second), (Guid.CreateVersion7(), third) })
        {
            await _bus.Bus.Publish(new AllocateNetwork(machine, tenant));
            await Eventually.TrueAsync(() => _replies.Answered(machine), TimeSpan.FromSeconds(30), "the allocation is answered");
        }

        Assert.Contains(_replies.Refused.Values, r => r.TenantId == third && r.ProblemType == "urn:platform:problem:pool-exhausted");
        using var admin = await AdminAsync();
        foreach (var (body, status) in new (string, HttpStatusCode)[]
        {
            ("""{"name":"bad","cidr":"10.99.0.1/24","subnetPrefixLength":29}""", HttpStatusCode.UnprocessableEntity),
            ("""{"name":"bad","cidr":"not-a-cidr","subnetPrefixLength":29}""", HttpStatusCode.UnprocessableEntity),
            ("""{"name":"bad","cidr":"10.98.0.0/24","subnetPrefixLength":16}""", HttpStatusCode.UnprocessableEntity),
            ("""{"name":"overlapping","cidr":"10.99.0.0/16","subnetPrefixLength":24}""", HttpStatusCode.Conflict),
        })
        {
            var response = await admin.PostAsync("/api/v1/networks/pools", new StringContent(body, Encoding.UTF8, "application/json"));
            Assert.True(response.StatusCode == status, $"{body}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }

        Assert.Single((await admin.GetFromJsonAsync<JsonElement>("/api/v1/networks/pools")).GetProperty("items").EnumerateArray());
        var added = await admin.PostAsJsonAsync("/api/v1/networks/pools", new { name = "more", cidr = "10.98.0.0/24", subnetPrefixLength = 28 });
        Assert.Equal(HttpStatusCode.Created, added.StatusCode);
        var retry = Guid.CreateVersion7();
        await _bus.Bus.Publish(new AllocateNetwork(retry, third));
        await Eventually.TrueAsync(() => _replies.Allocated.ContainsKey(retry), TimeSpan.FromSeconds(30), "the tenant gets a subnet of the new pool");
        Assert.StartsWith("10.98.0.", _replies.Allocated[retry].Address, StringComparison.Ordinal);

        using var tenantCaller = await CallerAsync(Roles.TenantAdmin, third);
        var networks = await tenantCaller.GetFromJsonAsync<JsonElement>("/api/v1/networks");
        var network = Assert.Single(networks.GetProperty("items").EnumerateArray());
        Assert.Equal("10.98.0.0/28", network.GetProperty("subnet").GetString());
        Assert.Equal(retry, Assert.Single(network.GetProperty("leases").EnumerateArray()).GetProperty("machineId").GetGuid());
    }

    [Fact]
    public async Task A_hundred_parallel_allocations_in_one_default_subnet_get_a_hundred_distinct_addresses_inside_it()
    {
        await using var environment = await ServiceEnvironment.CreateAsync();
        await using var networking = ServiceProcess.Start("networking", environment.For());
        await networking.WaitUntilReadyAsync();
        var replies = new Replies();
        await using var bus = await TestBus.StartAsync(environment.VirtualHost, "addressing-test", s => s.AddSingleton(replies), c => c.AddConsumer<ReplyConsumer>());
        var tenant = Guid.CreateVersion7();
        var machines = Enumerable.Range(0, 100).Select(_ => Guid.CreateVersion7()).ToArray();

        await Task.WhenAll(machines.Select(m => bus.Bus.Publish(new AllocateNetwork(m, tenant))));
        await Eventually.TrueAsync(() => machines.All(replies.Allocated.ContainsKey), TimeSpan.FromSeconds(60), "every machine gets an address");

        var subnet = IPNetwork.Parse(replies.Allocated[machines[0]].Subnet);
        Assert.True(IPNetwork.Parse("10.64.0.0/10").Contains(subnet.BaseAddress));
        var addresses = machines.Select(m => IPAddress.Parse(replies.Allocated[m].Address)).ToArray();
        Assert.Equal(100, addresses.Distinct().Count());
        Assert.All(addresses, a => Assert.True(subnet.Contains(a) && a.GetAddressBytes()[3] is not (0 or 1 or 255), $"{a} is a host address of {subnet} other than its gateway"));
    }

    private Task<HttpClient> AdminAsync() => CallerAsync(Roles.PlatformAdmin, null);

    private async Task<HttpClient> CallerAsync(string role, Guid? tenant)
    {
        var client = await _networking.CreateGatewayLikeClientAsync();
        client.DefaultRequestHeaders.Add(IdentityHeaders.Subject, "user:addressing-test");
        client.DefaultRequestHeaders.Add(IdentityHeaders.Role, role);
        if (tenant is { } id)
        {
            client.DefaultRequestHeaders.Add(IdentityHeaders.TenantId, id.ToString());
        }

        return client;
    }

    public sealed class Replies
    {
        private readonly ConcurrentDictionary<Guid, int> _allocatedCount = new();

        public ConcurrentDictionary<Guid, NetworkAllocated> Allocated { get; } = new();

        public ConcurrentDictionary<Guid, NetworkAllocationRefused> Refused { get; } = new();

        public ConcurrentDictionary<Guid, NetworkReleased> Released { get; } = new();

        public bool Answered(Guid machineId) => Allocated.ContainsKey(machineId) || Refused.ContainsKey(machineId);

        public int AllocatedCount(Guid machineId) => _allocatedCount.GetValueOrDefault(machineId);

        public void Record(NetworkAllocated allocated)
        {
            Allocated[allocated.MachineId] = allocated;
            _allocatedCount.AddOrUpdate(allocated.MachineId, 1, (_, n) => n + 1);
        }
    }

    public sealed class ReplyConsumer(Replies replies) : IConsumer<NetworkAllocated>, IConsumer<NetworkAllocationRefused>, IConsumer<NetworkReleased>
    {
        public Task Consume(ConsumeContext<NetworkAllocated> context)
        {
            replies.Record(context.Message);
            return Task.CompletedTask;
        }

        public Task Consume(ConsumeContext<NetworkAllocationRefused> context)
        {
            replies.Refused[context.Message.MachineId] = context.Message;
            return Task.CompletedTask;
        }

        public Task Consume(ConsumeContext<NetworkReleased> context)
        {
            replies.Released[context.Message.MachineId] = context.Message;
            return Task.CompletedTask;
        }
    }
}
