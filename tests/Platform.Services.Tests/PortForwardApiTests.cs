using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Platform.Provisioning.Drivers.Networking;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>
/// Host port forwards through the gateway: networking decides, the stack's host agent opens them with nftables on this
/// host, and real TCP connections from the host reach a server inside a sandbox.
/// </summary>
[Collection(PortForwardStackCollection.Name)]
public sealed class PortForwardApiTests(PortForwardStack stack)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_forward_made_through_the_api_reaches_a_server_in_a_sandbox_a_port_another_process_holds_is_never_handed_out_and_nothing_is_left_after_destroy()
    {
        using var admin = await stack.Platform.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        // Held on every address by this process (not the agent): the agent must see it taken when it binds to check.
        using var held = new TcpListener(IPAddress.Any, stack.FirstPort);
        held.Start();
        var token = Guid.NewGuid().ToString("N");
        var server = $$"""
            import http.server
            class Answer(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    body = ('hello from {{token}} to ' + self.client_address[0]).encode()
                    self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)
            http.server.HTTPServer(('0.0.0.0', 8080), Answer).serve_forever()
            """;
        var machine = await tenant.CreateMachineAsync(new { name = "serves", kind = "sandbox", vcpus = 1, memoryMiB = 64, command = new[] { "/usr/bin/python3", "-c", server } });
        var forwards = new List<Guid>();
        try
        {
            await tenant.WaitForMachineAsync(machine, "running");

            var (first, location) = await ForwardWhenKnownAsync(tenant, machine, 8080);
            forwards.Add(first);
            Assert.Equal($"/api/v1/machines/{machine}/ports/{first}", location.OriginalString);
            var open = await OpenAsync(tenant, location);
            var hostPort = open.GetProperty("hostPort").GetInt32();
            Assert.InRange(hostPort, stack.FirstPort + 1, stack.LastPort);
            Assert.Equal(8080, open.GetProperty("port").GetInt32());
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            var answer = "";
            await Eventually.TrueAsync(async () =>
            {
                try
                {
                    answer = await http.GetStringAsync($"http://127.0.0.1:{hostPort}/");
                    return true;
                }
                catch (HttpRequestException)
                {
                    return false; // the server in the sandbox may still be starting
                }
            }, Patience, "the server in the sandbox answers through the forward");
            Assert.StartsWith($"hello from {token} to ", answer, StringComparison.Ordinal);
            var advertised = open.GetProperty("address").GetString()!;
            Assert.StartsWith($"hello from {token} to ", await http.GetStringAsync($"http://{advertised}:{hostPort}/"), StringComparison.Ordinal);

            // The range holds three ports: one held by this process, one forwarded; the next forward gets the last, and then there is none.
            var second = await ForwardAsync(tenant, machine, 8081);
            forwards.Add(second.Id);
            var secondOpen = await OpenAsync(tenant, second.Location);
            Assert.Equal([stack.FirstPort + 1, stack.FirstPort + 2], new[] { hostPort, secondOpen.GetProperty("hostPort").GetInt32() }.Order());
            var third = await ForwardAsync(tenant, machine, 8082);
            forwards.Add(third.Id);
            var failed = await Eventually.ValueAsync(async () =>
                (await tenant.GetFromJsonAsync<JsonElement>(third.Location)) is var f && f.GetProperty("state").GetString() == "failed" ? f : (JsonElement?)null,
                Patience, "the third forward fails: no port of the range is free");
            Assert.Contains("No port from", failed.GetProperty("lastError").GetString(), StringComparison.Ordinal);
            Assert.False(failed.TryGetProperty("hostPort", out _), "a failed forward holds no host port");

            var listed = await tenant.GetFromJsonAsync<JsonElement>("/api/v1/port-forwards");
            Assert.Equal(forwards.Order(), listed.GetProperty("items").EnumerateArray().Select(f => f.GetProperty("id").GetGuid()).Order());

            await tenant.ActAsync(HttpMethod.Delete, second.Location.OriginalString);
            await Eventually.TrueAsync(async () => (await tenant.GetAsync(second.Location)).StatusCode == HttpStatusCode.NotFound, Patience, "the second forward is removed");
            // Removed, it still reads back as it stood at each version of its stream: asked for, open, then removed.
            var asked = await tenant.GetFromJsonAsync<JsonElement>($"{second.Location}?version=1");
            Assert.Equal(("opening", second.Id, machine), (asked.GetProperty("state").GetString(), asked.GetProperty("id").GetGuid(), asked.GetProperty("machineId").GetGuid()));
            var wasOpen = await tenant.GetFromJsonAsync<JsonElement>($"{second.Location}?version=2");
            Assert.Equal(("open", secondOpen.GetProperty("hostPort").GetInt32()), (wasOpen.GetProperty("state").GetString(), wasOpen.GetProperty("hostPort").GetInt32()));
            Assert.Equal("removed", (await tenant.GetFromJsonAsync<JsonElement>($"{second.Location}?at={Uri.EscapeDataString(DateTimeOffset.UtcNow.AddMinutes(1).ToString("O"))}")).GetProperty("state").GetString());
            await Problems.AssertAsync(await tenant.GetAsync($"{second.Location}?version=0"), HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
            Assert.DoesNotContain(await PortForward.ListAsync(), f => f.Table == PortForward.TableNameFor(second.Id.ToString()));
            await tenant.ActAsync(HttpMethod.Delete, third.Location.OriginalString);
            Assert.Equal(HttpStatusCode.NotFound, (await tenant.GetAsync(third.Location)).StatusCode);

            await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{machine}");
            await tenant.WaitForMachineAsync(machine, "destroyed");
            await Eventually.TrueAsync(async () =>
                (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{machine}/ports")).GetProperty("items").GetArrayLength() == 0,
                Patience, "the destroyed machine's forwards are gone from the API");
            var tables = await ReadAsync("nft", "list", "tables");
            Assert.All(forwards, f => Assert.DoesNotContain(PortForward.TableNameFor(f.ToString()), tables, StringComparison.Ordinal));
            Assert.Empty((await tenant.GetFromJsonAsync<JsonElement>("/api/v1/port-forwards")).GetProperty("items").EnumerateArray());
            await Eventually.TrueAsync(async () => (await tenant.GetStringAsync("/api/v1/audit?type=PortForwarded")).Contains(first.ToString(), StringComparison.Ordinal),
                Patience, "the audit log has the forward");
        }
        finally
        {
            await DestroyAsync(tenant, machine);
        }
    }

    [Fact]
    public async Task Another_tenant_finds_no_machine_ports_and_bad_ports_unknown_stopped_or_segmentless_machines_are_refused_with_problems()
    {
        using var admin = await stack.Platform.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var (_, other) = await admin.CreateTenantWithAdminAsync();
        var running = await tenant.CreateMachineAsync(new { kind = "sandbox", vcpus = 1, memoryMiB = 64, command = new[] { "/bin/sleep", "600" } });
        var stopped = await tenant.CreateMachineAsync(new { kind = "sandbox", vcpus = 1, memoryMiB = 64, command = new[] { "/bin/sleep", "600" } });
        var simulated = await tenant.CreateMachineAsync(new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64 });
        try
        {
            await tenant.WaitForMachineAsync(running, "running");
            await tenant.WaitForMachineAsync(simulated, "running");
            await tenant.WaitForMachineAsync(stopped, "running");
            var (forward, location) = await ForwardWhenKnownAsync(tenant, running, 22);
            await tenant.ActAsync(HttpMethod.Post, $"/api/v1/machines/{stopped}/stop");
            await tenant.WaitForMachineAsync(stopped, "stopped");

            await Problems.AssertAsync(await other.PostAsJsonAsync($"/api/v1/machines/{running}/ports", new { port = 80 }), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
            await Problems.AssertAsync(await other.GetAsync($"/api/v1/machines/{running}/ports"), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
            await Problems.AssertAsync(await other.GetAsync(location), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
            await Problems.AssertAsync(await other.DeleteAsync(location), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
            Assert.DoesNotContain(forward.ToString(), await other.GetStringAsync("/api/v1/port-forwards"), StringComparison.Ordinal);
            Assert.Contains(forward.ToString(), await tenant.GetStringAsync($"/api/v1/machines/{running}/ports"), StringComparison.Ordinal);
            var key = Guid.NewGuid().ToString();
            Assert.Equal(await PostWithKeyAsync(tenant, running, key), await PostWithKeyAsync(tenant, running, key));

            foreach (var body in new object[] { new { port = 0 }, new { port = 70000 }, new { } })
            {
                var problem = await Problems.AssertAsync(await tenant.PostAsJsonAsync($"/api/v1/machines/{running}/ports", body),
                    HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
                Assert.True(problem.GetProperty("errors").TryGetProperty("port", out _));
            }

            await Problems.AssertAsync(await tenant.PostAsJsonAsync($"/api/v1/machines/{Guid.NewGuid()}/ports", new { port = 80 }),
                HttpStatusCode.NotFound, "urn:platform:problem:not-found");
            var notRunning = await Eventually.ValueAsync(async () =>
            {
                var response = await tenant.PostAsJsonAsync($"/api/v1/machines/{stopped}/ports", new { port = 80 });
                return response.StatusCode == HttpStatusCode.Conflict ? await Problems.AssertAsync(response, HttpStatusCode.Conflict, "urn:platform:problem:conflict") : (JsonElement?)null;
            }, Patience, "networking's copy sees the machine stopped");
            Assert.Contains("is not running", notRunning.GetProperty("detail").GetString(), StringComparison.Ordinal);
            var segmentless = await Problems.AssertAsync(await tenant.PostAsJsonAsync($"/api/v1/machines/{simulated}/ports", new { port = 80 }),
                HttpStatusCode.Conflict, "urn:platform:problem:conflict");
            Assert.Contains("only sandbox and microvm", segmentless.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }
        finally
        {
            foreach (var machine in new[] { running, stopped, simulated })
            {
                await DestroyAsync(tenant, machine);
            }
        }
    }

    [Fact]
    public async Task A_restarted_host_agent_removes_a_forward_of_its_segments_that_no_record_explains()
    {
        using var admin = await stack.Platform.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var machine = await tenant.CreateMachineAsync(new { kind = "sandbox", vcpus = 1, memoryMiB = 64, command = new[] { "/bin/sleep", "600" } });
        try
        {
            await tenant.WaitForMachineAsync(machine, "running");
            var (forward, location) = await ForwardWhenKnownAsync(tenant, machine, 80);
            await OpenAsync(tenant, location);
            var table = PortForward.TableNameFor(forward.ToString());
            Assert.Contains(table, await ReadAsync("nft", "list", "tables"), StringComparison.Ordinal);

            // As if the agent had crashed after making the forward and before recording it.
            File.Delete(Path.Combine(stack.Platform.AgentStatePath, "forwards", $"{forward}.json"));
            await stack.Platform.CrashAndRestartHostAgentAsync();

            await Eventually.TrueAsync(async () => !(await ReadAsync("nft", "list", "tables")).Contains(table, StringComparison.Ordinal), Patience,
                "the restarted agent removes the unexplained forward");
        }
        finally
        {
            await DestroyAsync(tenant, machine);
        }
    }

    /// <summary>Networking learns that a machine runs from provisioning's event: the first request may come before it.</summary>
    private static Task<(Guid Id, Uri Location)> ForwardWhenKnownAsync(HttpClient tenant, Guid machine, int port) =>
        Eventually.ValueAsync(async () =>
        {
            var response = await tenant.PostAsJsonAsync($"/api/v1/machines/{machine}/ports", new { port });
            return response.StatusCode == HttpStatusCode.Accepted
                ? ((await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid(), response.Headers.Location!)
                : ((Guid, Uri)?)null;
        }, Patience, $"networking knows machine {machine} runs");

    private static async Task<(Guid Id, Uri Location)> ForwardAsync(HttpClient tenant, Guid machine, int port)
    {
        var response = await tenant.PostAsJsonAsync($"/api/v1/machines/{machine}/ports", new { port });
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync());
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("opening", body.GetProperty("state").GetString());
        return (body.GetProperty("id").GetGuid(), response.Headers.Location!);
    }

    private static async Task<Guid> PostWithKeyAsync(HttpClient tenant, Guid machine, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/machines/{machine}/ports") { Content = JsonContent.Create(new { port = 443 }) };
        request.Headers.Add("Idempotency-Key", key);
        using var response = await tenant.SendAsync(request);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
    }

    private static Task<JsonElement> OpenAsync(HttpClient tenant, Uri location) =>
        Eventually.ValueAsync(async () =>
            (await tenant.GetFromJsonAsync<JsonElement>(location)) is var f && f.GetProperty("state").GetString() == "open" ? f : (JsonElement?)null,
            Patience, $"{location} is open");

    private static async Task DestroyAsync(HttpClient tenant, Guid machine)
    {
        if ((await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{machine}")).GetProperty("state").GetString() != "destroyed")
        {
            await tenant.DeleteAsync($"/api/v1/machines/{machine}");
            await tenant.GetAsync($"/api/v1/machines/{machine}/wait?state=destroyed&timeout=60s");
        }
    }

    private static async Task<string> ReadAsync(params string[] command)
    {
        using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(command[0], command[1..]) { RedirectStandardOutput = true })!;
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        return output;
    }
}
