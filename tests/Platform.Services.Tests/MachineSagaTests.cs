using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Platform.Provisioning.Drivers.Networking;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>
/// The machine saga through the gateway with real drivers: quota → network → launch → tunnel → registration, each step
/// an event of the machine; a failing step undoes what was done before it; a destroy gives everything back.
/// </summary>
[Collection(StackCollection.Name)]
public sealed class MachineSagaTests(PlatformStack stack)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_micro_vm_behind_an_exit_node_answers_in_its_tenant_network_a_sandbox_behind_it_reaches_the_outside_as_its_tunnel_address_and_nothing_is_left_after_destroying_them()
    {
        using var admin = await stack.AdminAsync();
        var (tenantId, tenant) = await admin.CreateTenantWithAdminAsync();
        await using var exit = await TestExitNode.StartAsync();
        var exitNodeId = await exit.RegisterAsync(tenant, "lab-exit");

        // The sandbox asks the server behind the exit node who is calling, until its tunnel lets it through, and says the answer as it exits.
        var ask = $"import socket, sys, time\nfor _ in range(240):\n    try:\n        s = socket.create_connection(('{TestExitNode.Server.Address}', {TestExitNode.Server.Port}), timeout=1)\n        sys.stderr.write('seen as ' + s.makefile().readline().strip()); sys.exit(9)\n    except OSError:\n        time.sleep(0.5)\nsys.exit(3)";
        var vm = await CreateWhenExitNodeKnownAsync(tenant, new { name = "behind-exit", kind = "microvm", vcpus = 1, memoryMiB = 128, exitNodeId });
        var sandbox = await tenant.CreateMachineAsync(new { name = "asks-out", kind = "sandbox", vcpus = 1, memoryMiB = 64, exitNodeId, command = new[] { "/usr/bin/python3", "-c", ask } });

        foreach (var machine in new[] { vm, sandbox })
        {
            var tunnel = await Eventually.ValueAsync(async () =>
            {
                var response = await tenant.GetAsync($"/api/v1/tunnels/{machine}");
                return response.IsSuccessStatusCode && (await response.Content.ReadFromJsonAsync<JsonElement>()) is { } t && t.GetProperty("state").GetString() == "attached" ? t : (JsonElement?)null;
            }, Patience, $"machine {machine}'s tunnel is attached");
            Assert.Equal(exitNodeId, tunnel.GetProperty("exitNodeId").GetGuid());
            await exit.AdmitAsync(tunnel.GetProperty("publicKey").GetString()!, tunnel.GetProperty("tunnelAddress").GetString()!);
        }

        var running = await tenant.WaitForMachineAsync(vm, "running");
        Assert.Equal(exitNodeId, running.GetProperty("exitNodeId").GetGuid());
        var segment = TenantSegment.NameFor(running.GetProperty("hostId").GetGuid(), tenantId);
        var ip = running.GetProperty("network").GetProperty("ip").GetString()!;
        var network = await tenant.GetFromJsonAsync<JsonElement>("/api/v1/networks");
        Assert.Contains(ip, network.ToString(), StringComparison.Ordinal);
        Assert.StartsWith($"platform-guest id={vm:N} hostname=behind-exit ip={ip}", await MicroVmMachineTests.ProbeAsync(tenant, tenantId, vm), StringComparison.Ordinal);

        var sandboxTunnel = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/tunnels/{sandbox}");
        var asked = await tenant.WaitForMachineAsync(sandbox, "failed");
        Assert.Equal(9, asked.GetProperty("exitCode").GetInt32());
        Assert.EndsWith($"seen as {sandboxTunnel.GetProperty("tunnelAddress").GetString()}", asked.GetProperty("lastError").GetString(), StringComparison.Ordinal);
        var handshaken = await Eventually.ValueAsync(async () =>
            (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/tunnels/{sandbox}")) is var t && t.TryGetProperty("handshakeAgeSeconds", out var age) ? age.GetDouble() : (double?)null,
            Patience, "the sandbox's tunnel reports its handshake");
        Assert.InRange(handshaken, 0, 180);

        var events = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{vm}/events");
        Assert.Equal(["quota", "network", "launch", "tunnel", "registration"],
            events.EnumerateArray().Where(e => e.GetProperty("type").GetString() == "MachineStepCompleted").Select(e => e.GetProperty("data").GetProperty("step").GetString()));
        var inventory = await tenant.GetStringAsync($"/api/v1/tenants/{tenantId}/inventory");
        Assert.Contains(vm.ToString(), inventory, StringComparison.Ordinal);

        foreach (var machine in new[] { vm, sandbox })
        {
            await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{machine}");
            await tenant.WaitForMachineAsync(machine, "destroyed");
            Assert.Equal(HttpStatusCode.NotFound, (await tenant.GetAsync($"/api/v1/tunnels/{machine}")).StatusCode);
            // Detached, the tunnel still reads back as it stood: requested first, then attached through the exit node.
            Assert.Equal("attaching", (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/tunnels/{machine}?version=1")).GetProperty("state").GetString());
            var attached = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/tunnels/{machine}?version=2");
            Assert.Equal(("attached", exitNodeId), (attached.GetProperty("state").GetString(), attached.GetProperty("exitNodeId").GetGuid()));
            Assert.Equal("detached", (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/tunnels/{machine}?at={Uri.EscapeDataString(DateTimeOffset.UtcNow.AddMinutes(1).ToString("O"))}")).GetProperty("state").GetString());
            Assert.Empty(await NetworkNamespace.ListAsync($"pm-{machine:N}"));
        }

        Assert.Equal(["quota", "network", "launch", "tunnel", "registration", "unregister", "detach-tunnel", "tear-down", "release-network", "release-quota"],
            (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{vm}/events")).EnumerateArray()
                .Where(e => e.GetProperty("type").GetString() == "MachineStepCompleted").Select(e => e.GetProperty("data").GetProperty("step").GetString()));
        Assert.Empty(await NetworkNamespace.ListAsync(segment));
        var wireGuards = WireGuardInterface.ListUserspace(WireGuardTunnel.InterfacePrefix);
        Assert.DoesNotContain(WireGuardTunnel.InterfaceNameFor(vm.ToString()), wireGuards);
        Assert.DoesNotContain(WireGuardTunnel.InterfaceNameFor(sandbox.ToString()), wireGuards);
        Assert.DoesNotContain(vm.ToString(), await tenant.GetStringAsync($"/api/v1/tenants/{tenantId}/inventory"), StringComparison.Ordinal);
        Assert.Equal(0, (await tenant.GetFromJsonAsync<JsonElement>("/api/v1/quotas")).GetProperty("used").GetProperty("machines").GetInt32());
    }

    [Fact]
    public async Task A_creation_the_quota_does_not_allow_is_refused_at_once_naming_the_limit_and_creates_nothing()
    {
        using var admin = await stack.AdminAsync();
        var (tenantId, tenant) = await admin.CreateTenantWithAdminAsync();
        var limits = new { machines = 2, vcpus = 8, memoryMiB = 4096, diskMiB = 100, tunnels = 0, portForwards = 0 };
        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync($"/api/v1/tenants/{tenantId}/quotas", limits)).StatusCode);

        var first = await tenant.CreateMachineAsync(new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64, diskMiB = 64 });
        await tenant.WaitForMachineAsync(first, "running");
        var overDisk = await tenant.PostAsJsonAsync("/api/v1/machines", new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64, diskMiB = 64 });
        var second = await tenant.CreateMachineAsync(new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64 });
        await tenant.WaitForMachineAsync(second, "running");
        var overMachines = await tenant.PostAsJsonAsync("/api/v1/machines", new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64 });

        var disk = await Problems.AssertAsync(overDisk, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:quota-exceeded");
        Assert.Equal("the tenant's diskMiB quota would be 128 of 100", disk.GetProperty("detail").GetString());
        Assert.Equal(("diskMiB", 64, 64, 100), (disk.GetProperty("limit").GetString(), disk.GetProperty("used").GetInt32(), disk.GetProperty("requested").GetInt32(), disk.GetProperty("max").GetInt32()));
        var machines = await Problems.AssertAsync(overMachines, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:quota-exceeded");
        Assert.Equal("the tenant's machines quota would be 3 of 2", machines.GetProperty("detail").GetString());
        var listed = await tenant.GetFromJsonAsync<JsonElement>("/api/v1/machines");
        Assert.Equal(2, listed.GetProperty("items").GetArrayLength());
        Assert.Equal(2, (await tenant.GetFromJsonAsync<JsonElement>("/api/v1/quotas")).GetProperty("used").GetProperty("machines").GetInt32());

        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{second}");
        await tenant.WaitForMachineAsync(second, "destroyed");
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{first}");
        await tenant.WaitForMachineAsync(first, "destroyed");
    }

    [Fact]
    public async Task A_launch_that_fails_gives_back_the_address_and_the_quota_and_the_operation_names_the_step()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var created = await tenant.PostAsJsonAsync("/api/v1/machines", new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64, command = new[] { "simulated-launch-failure" } });
        Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
        var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();

        var failed = await tenant.WaitForMachineAsync(id, "failed");
        Assert.StartsWith("creation failed at the launch step: simulated launch failure", failed.GetProperty("lastError").GetString(), StringComparison.Ordinal);
        var operation = await tenant.GetFromJsonAsync<JsonElement>(created.Headers.Location);
        Assert.Equal("failed", operation.GetProperty("status").GetString());
        Assert.Equal(["quota", "network", "tear-down", "release-network", "release-quota"],
            operation.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("step").GetString()));
        Assert.Equal(0, (await tenant.GetFromJsonAsync<JsonElement>("/api/v1/quotas")).GetProperty("used").GetProperty("machines").GetInt32());
        Assert.DoesNotContain(id.ToString(), (await tenant.GetFromJsonAsync<JsonElement>("/api/v1/networks")).ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_machine_naming_an_exit_node_the_tenant_cannot_use_is_refused_before_anything_is_made()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var (_, other) = await admin.CreateTenantWithAdminAsync();
        var foreign = (await (await other.PostAsJsonAsync("/api/v1/exit-nodes", ExitNodeTests.ValidNode)).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();

        foreach (var exitNodeId in new[] { foreign.ToString(), Guid.NewGuid().ToString(), "not-an-id" })
        {
            var refused = await tenant.PostAsJsonAsync("/api/v1/machines", new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64, exitNodeId });
            var problem = await Problems.AssertAsync(refused, HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
            Assert.True(problem.GetProperty("errors").TryGetProperty("exitNodeId", out _));
        }

        Assert.Empty((await tenant.GetFromJsonAsync<JsonElement>("/api/v1/machines")).GetProperty("items").EnumerateArray());
    }

    /// <summary>Provisioning learns of a new exit node from networking's event: the first request may come before it.</summary>
    internal static Task<Guid> CreateWhenExitNodeKnownAsync(HttpClient tenant, object body) =>
        Eventually.ValueAsync(async () =>
        {
            var created = await tenant.PostAsJsonAsync("/api/v1/machines", body);
            return created.StatusCode == HttpStatusCode.Accepted ? (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid() : (Guid?)null;
        }, TimeSpan.FromSeconds(30), "provisioning knows the exit node");
}
