using System.Net.Http.Json;
using System.Text.Json;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>Machines with a disk (<c>diskMiB</c>) through the gateway: what the guest sees, what lasts, and what the host counts.</summary>
[Collection(StackCollection.Name)]
public sealed class MachineDiskTests(PlatformStack stack)
{
    [Fact]
    public async Task A_micro_vm_with_a_disk_sees_it_as_its_root_keeps_its_writes_across_a_stop_and_a_start_and_loses_them_to_a_recreate()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        tenant.Timeout = TimeSpan.FromSeconds(90);
        var id = await tenant.CreateMachineAsync(new { kind = "microvm", vcpus = 1, memoryMiB = 128, diskMiB = 64 });
        var running = await tenant.WaitForMachineAsync(id, "running");
        var usedOnHost = await HostDiskUsedAsync(admin, running.GetProperty("hostId").GetGuid());

        var seen = await tenant.ExecAsync(id, new { command = new[] { "/bin/sh", "-c", "df -m / | tail -n 1 | awk '{print $1, $2}'; echo kept > /root/kept; sync" } });
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/stop");
        await tenant.WaitForMachineAsync(id, "stopped");
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/start");
        await tenant.WaitForMachineAsync(id, "running");
        var afterStart = await tenant.ExecAsync(id, new { command = new[] { "cat", "/root/kept" } });
        await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{id}/recreate");
        await tenant.WaitForMachineAsync(id, "running");
        var afterRecreate = await tenant.ExecAsync(id, new { command = new[] { "/bin/sh", "-c", "test -e /root/kept && echo still-there || echo gone" } });
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");

        var disk = seen.GetProperty("stdout").GetString()!.Trim().Split(' ');
        Assert.Equal("/dev/vda", disk[0]);
        Assert.InRange(int.Parse(disk[1], System.Globalization.CultureInfo.InvariantCulture), 50, 64);
        Assert.Equal("kept\n", afterStart.GetProperty("stdout").GetString());
        Assert.Equal("gone\n", afterRecreate.GetProperty("stdout").GetString());
        Assert.True(usedOnHost >= 64, $"the host counts the machine's disk: {usedOnHost} MiB used");
    }

    [Fact]
    public async Task A_sandbox_with_a_disk_has_it_as_its_scratch()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var id = await tenant.CreateMachineAsync(new { kind = "sandbox", vcpus = 1, memoryMiB = 64, diskMiB = 128 });
        await tenant.WaitForMachineAsync(id, "running");

        var seen = await tenant.ExecAsync(id, new { command = new[] { "/bin/sh", "-c", "df -m /scratch | tail -n 1 | awk '{print $2}'; head -c 50000000 /dev/zero > /scratch/big && echo written" } });
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");

        var lines = seen.GetProperty("stdout").GetString()!.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.InRange(int.Parse(lines[0], System.Globalization.CultureInfo.InvariantCulture), 100, 128);
        Assert.Equal("written", lines[1]);
    }

    [Fact]
    public async Task The_documented_template_list_has_the_shape_the_service_answers()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();

        var templates = await tenant.GetFromJsonAsync<JsonElement>("/api/v1/templates");

        var documented = DocumentationTests.Example(Path.Combine("api", "templates.md"), "templates");
        DocumentationTests.AssertSameShape(documented, templates);
        DocumentationTests.AssertSameShape(documented[0], templates[0]);
        Assert.Contains(templates.EnumerateArray(), t => t.GetProperty("name").GetString() == "microvm-default" && t.GetProperty("kind").GetString() == "microvm");
    }

    private static async Task<int> HostDiskUsedAsync(HttpClient admin, Guid hostId) =>
        (await admin.GetFromJsonAsync<JsonElement>("/api/v1/hosts")).EnumerateArray()
            .Single(h => h.GetProperty("id").GetGuid() == hostId).GetProperty("used").GetProperty("diskMiB").GetInt32();
}
