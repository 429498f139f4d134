using System.Diagnostics;
using System.Net;
using Platform.Provisioning.Drivers.Networking;

namespace Platform.Provisioning.Tests;

/// <summary>Tenant segments with real namespaces, bridges and veths, proved with real packets (busybox ping).</summary>
public sealed class TenantSegmentTests : IAsyncLifetime
{
    private readonly string _run = Guid.NewGuid().ToString("N")[..6];
    private readonly List<string> _namespaces = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var name in _namespaces)
        {
            await NetworkNamespace.DeleteAsync(name);
        }
    }

    [Fact]
    public async Task Machines_of_one_tenant_reach_each_other_and_never_another_tenants()
    {
        var tenantA = await SegmentAsync("a", "10.201.1.1");
        var tenantB = await SegmentAsync("b", "10.201.2.1");
        var a1 = await EndpointAsync(tenantA, "a1", "10.201.1.2", "10.201.1.1");
        var a2 = await EndpointAsync(tenantA, "a2", "10.201.1.3", "10.201.1.1");
        var b1 = await EndpointAsync(tenantB, "b1", "10.201.2.2", "10.201.2.1");
        var b2 = await EndpointAsync(tenantB, "b2", "10.201.2.3", "10.201.2.1");

        Assert.True(await PingAsync(a1, "10.201.1.3"), "a machine reaches its tenant's other machine");
        Assert.True(await PingAsync(a2, "10.201.1.1"), "a machine reaches its tenant's gateway");
        Assert.True(await PingAsync(b2, "10.201.2.2"), "the other tenant's machines reach each other");
        Assert.False(await PingAsync(a1, "10.201.2.2"), "a machine never reaches another tenant's machine");
        Assert.False(await PingAsync(a1, "10.201.2.1"), "nor another tenant's gateway");
        Assert.False(await PingAsync(b1, "10.201.1.2"), "nor the other way round");
    }

    [Fact]
    public async Task Ensuring_a_segment_twice_keeps_it_and_deleting_it_removes_its_ports()
    {
        var segment = await SegmentAsync("c", "10.201.3.1");
        var endpoint = await EndpointAsync(segment, "c1", "10.201.3.2", "10.201.3.1");
        var again = await TenantSegment.EnsureAsync(segment.Namespace, IPAddress.Parse("10.201.3.1"), 24);
        Assert.True(await PingAsync(endpoint, "10.201.3.1"), "the segment works after a second ensure");

        await again.DeleteAsync();

        Assert.Empty(await NetworkNamespace.ListAsync(segment.Namespace));
        // The kernel tears a namespace down (and with it both ends of its veths) in the background.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while ((await IpCommand.TryRunAsync("-n", endpoint, "link", "show", "eth0")).ExitCode == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the endpoint's end of the veth went with the segment");
            await Task.Delay(100);
        }
    }

    private async Task<TenantSegment> SegmentAsync(string tenant, string gateway)
    {
        var name = $"pmt-seg-{tenant}-{_run}";
        _namespaces.Add(name);
        return await TenantSegment.EnsureAsync(name, IPAddress.Parse(gateway), 24);
    }

    private async Task<string> EndpointAsync(TenantSegment segment, string name, string address, string gateway)
    {
        var endpoint = $"pmt-ep-{name}-{_run}";
        _namespaces.Add(endpoint);
        await IpCommand.RunAsync("netns", "add", endpoint);
        await segment.PlugAsync(endpoint, IPAddress.Parse(address), 24, IPAddress.Parse(gateway));
        return endpoint;
    }

    private static async Task<bool> PingAsync(string fromNamespace, string address)
    {
        using var ping = Process.Start(new ProcessStartInfo("ip", ["netns", "exec", fromNamespace, "busybox", "ping", "-c", "1", "-W", "1", address])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        await ping.WaitForExitAsync();
        return ping.ExitCode == 0;
    }
}
