using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Platform.Provisioning.Drivers.Networking;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>Real micro-VMs (QEMU, under KVM where it works, TCG here) through the API, run by the stack's host agent.</summary>
[Collection(StackCollection.Name)]
public sealed class MicroVmMachineTests(PlatformStack stack)
{
    private const int GuestAgentPort = 7070;

    [Fact]
    public async Task A_cold_booted_micro_vm_answers_on_its_ip_stops_starts_restarts_fails_when_qemu_dies_and_is_destroyed_without_a_trace()
    {
        using var admin = await stack.AdminAsync();
        var (tenantId, tenant) = await admin.CreateTenantWithAdminAsync();
        var id = await tenant.CreateMachineAsync(new { name = "cold-one", kind = "microvm", vcpus = 1, memoryMiB = 160, boot = "cold" });

        var running = await tenant.WaitForMachineAsync(id, "running");
        Assert.Equal("cold", running.GetProperty("bootedFrom").GetString());
        Assert.Contains(running.GetProperty("accelerator").GetString(), new[] { "kvm", "tcg" });
        var ip = running.GetProperty("network").GetProperty("ip").GetString()!;
        Assert.Equal($"platform-guest id={id:N} hostname=cold-one ip={ip}", await ProbeAsync(tenant, tenantId, id));

        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/stop");
        await tenant.WaitForMachineAsync(id, "stopped");
        Assert.Null(QemuOf(id));
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/start");
        Assert.Equal(ip, (await tenant.WaitForMachineAsync(id, "running")).GetProperty("network").GetProperty("ip").GetString());
        var restart = await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/restart");
        await Eventually.TrueAsync(async () => (await tenant.GetFromJsonAsync<JsonElement>(restart)).GetProperty("status").GetString() == "succeeded",
            TimeSpan.FromSeconds(60), "the restart completes");
        Assert.StartsWith($"platform-guest id={id:N}", await ProbeAsync(tenant, tenantId, id), StringComparison.Ordinal);

        using (var qemu = QemuOf(id)!)
        {
            qemu.Kill();
        }

        var failed = await tenant.WaitForMachineAsync(id, "failed");
        Assert.Contains("signal", failed.GetProperty("lastError").GetString(), StringComparison.OrdinalIgnoreCase);

        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
        Assert.Empty(await NetworkNamespace.ListAsync($"pm-{id:N}"));
        Assert.False(Directory.Exists(Path.Combine(stack.MicroVmRunPath, "vm", id.ToString("N"))));
    }

    [Fact]
    public async Task Micro_vms_started_from_one_snapshot_each_answer_on_their_own_ip_with_their_own_hostname()
    {
        using var admin = await stack.AdminAsync();
        var (tenantId, tenant) = await admin.CreateTenantWithAdminAsync();
        await Eventually.TrueAsync(async () => (await admin.GetStringAsync("/api/v1/hosts")).Contains("\"snapshots\":[{", StringComparison.Ordinal),
            TimeSpan.FromSeconds(90), "the host agent has a snapshot of the template ready");

        var first = await tenant.CreateMachineAsync(new { name = "twin-a", kind = "microvm", vcpus = 1, memoryMiB = 128 });
        var second = await tenant.CreateMachineAsync(new { name = "twin-b", kind = "microvm", vcpus = 1, memoryMiB = 128 });
        var a = await tenant.WaitForMachineAsync(first, "running");
        var b = await tenant.WaitForMachineAsync(second, "running");

        Assert.Equal(("snapshot", "snapshot"), (a.GetProperty("bootedFrom").GetString(), b.GetProperty("bootedFrom").GetString()));
        var ipA = a.GetProperty("network").GetProperty("ip").GetString()!;
        var ipB = b.GetProperty("network").GetProperty("ip").GetString()!;
        Assert.NotEqual(ipA, ipB);
        Assert.NotEqual(a.GetProperty("network").GetProperty("mac").GetString(), b.GetProperty("network").GetProperty("mac").GetString());
        Assert.Equal($"platform-guest id={first:N} hostname=twin-a ip={ipA}", await ProbeAsync(tenant, tenantId, first));
        Assert.Equal($"platform-guest id={second:N} hostname=twin-b ip={ipB}", await ProbeAsync(tenant, tenantId, second));

        foreach (var id in new[] { first, second })
        {
            await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
            await tenant.WaitForMachineAsync(id, "destroyed");
            Assert.Empty(await NetworkNamespace.ListAsync($"pm-{id:N}"));
            Assert.False(Directory.Exists(Path.Combine(stack.MicroVmRunPath, "vm", id.ToString("N"))));
        }
    }

    /// <summary>What the guest agent answers, asked from its tenant's network (the segment's namespace on the machine's host).</summary>
    internal static async Task<string> ProbeAsync(HttpClient tenant, Guid tenantId, Guid machineId)
    {
        var machine = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{machineId}");
        var segment = TenantSegment.NameFor(machine.GetProperty("hostId").GetGuid(), tenantId);
        var ip = machine.GetProperty("network").GetProperty("ip").GetString()!;
        using var socket = await NetworkNamespace.Open(segment).ConnectAsync(IPAddress.Parse(ip), GuestAgentPort, CancellationToken.None);
        var buffer = new byte[256];
        var answer = new StringBuilder();
        int read;
        while ((read = await socket.ReceiveAsync(buffer)) > 0)
        {
            answer.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }

        return answer.ToString().Trim();
    }

    private static Process? QemuOf(Guid machineId) =>
        Process.GetProcessesByName("qemu-system-x86_64").FirstOrDefault(p => File.ReadAllText($"/proc/{p.Id}/cmdline").Contains(machineId.ToString("N"), StringComparison.Ordinal));
}
