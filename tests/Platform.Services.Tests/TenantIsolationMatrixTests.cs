using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Platform.Hosting.Security;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>
/// Every route of the public API, taken from the services' OpenAPI documents, against tenant isolation:
/// tenant A's token and API key on tenant B's resources find nothing (404, not 403), a viewer changes
/// nothing, and a bad, revoked or missing credential gets 401. A route the matrix does not classify fails
/// the test, so a new route cannot go unchecked.
/// </summary>
[Collection(StackCollection.Name)]
public sealed class TenantIsolationMatrixTests(PlatformStack stack)
{
    private enum Kind
    {
        /// <summary>Reachable without credentials.</summary>
        Public,

        /// <summary>Names a tenant's resource in its path: another tenant's caller gets 404.</summary>
        TenantResource,

        /// <summary>Works on the caller's own tenant or self only (no id in the path to point elsewhere).</summary>
        OwnScope,

        /// <summary>Platform-admin only: a tenant's caller gets 403.</summary>
        PlatformAdmin,
    }

    private sealed record Route(Kind Kind, bool Mutates, object? Body = null);

    private const string Password = "correct horse battery staple";

    private static readonly object SimulatedMachine = new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64 };

    private static readonly Dictionary<string, Route> Matrix = new()
    {
        ["POST /api/v1/auth/token"] = new(Kind.Public, false),
        ["GET /api/v1/provisioning/info"] = new(Kind.Public, false),
        ["GET /api/v1/networking/info"] = new(Kind.Public, false),
        ["GET /api/v1/tenancy/info"] = new(Kind.Public, false),
        ["GET /api/v1/telemetry/info"] = new(Kind.Public, false),
        ["GET /api/v1/tenancy/jwks"] = new(Kind.Public, false),
        ["POST /api/v1/auth/signing-keys/rotate"] = new(Kind.PlatformAdmin, true),
        ["GET /api/v1/tenants"] = new(Kind.OwnScope, false),
        ["POST /api/v1/tenants"] = new(Kind.PlatformAdmin, true, new { slug = "matrix", name = "Matrix" }),
        ["GET /api/v1/tenants/{tenantId}"] = new(Kind.TenantResource, false),
        ["GET /api/v1/tenants/{tenantId}/users"] = new(Kind.TenantResource, false),
        ["POST /api/v1/tenants/{tenantId}/users"] = new(Kind.TenantResource, true, new { username = "matrix-user", password = Password, role = Roles.Member }),
        ["GET /api/v1/tenants/{tenantId}/quotas"] = new(Kind.TenantResource, false),
        ["PUT /api/v1/tenants/{tenantId}/quotas"] = new(Kind.TenantResource, true, new { machines = 1, vcpus = 1, memoryMiB = 1, diskMiB = 1, tunnels = 1, portForwards = 1, snapshots = 1 }),
        ["GET /api/v1/tenants/{tenantId}/inventory"] = new(Kind.TenantResource, false),
        ["GET /api/v1/users/me"] = new(Kind.OwnScope, false),
        ["POST /api/v1/users/me/password"] = new(Kind.OwnScope, false, new { currentPassword = Password, newPassword = Password }),
        ["GET /api/v1/api-keys"] = new(Kind.OwnScope, false),
        ["POST /api/v1/api-keys"] = new(Kind.OwnScope, true, new { name = "matrix", role = Roles.Viewer }),
        ["DELETE /api/v1/api-keys/{keyId}"] = new(Kind.TenantResource, true),
        ["GET /api/v1/quotas"] = new(Kind.OwnScope, false),
        ["GET /api/v1/governance/guardrails"] = new(Kind.PlatformAdmin, false),
        ["GET /api/v1/audit"] = new(Kind.OwnScope, false),
        ["GET /api/v1/subscriptions"] = new(Kind.OwnScope, false),
        ["POST /api/v1/subscriptions"] = new(Kind.OwnScope, true, new { url = "http://127.0.0.1:1/hook" }),
        ["GET /api/v1/subscriptions/{subscriptionId}"] = new(Kind.TenantResource, false),
        ["DELETE /api/v1/subscriptions/{subscriptionId}"] = new(Kind.TenantResource, true),
        ["POST /api/v1/subscriptions/{subscriptionId}/replay"] = new(Kind.TenantResource, true),
        ["GET /api/v1/subscriptions/{subscriptionId}/dead-letters"] = new(Kind.TenantResource, false),
        ["POST /api/v1/subscriptions/{subscriptionId}/dead-letters/redeliver"] = new(Kind.TenantResource, true),
        ["GET /api/v1/events"] = new(Kind.OwnScope, false),
        ["POST /api/v1/machines"] = new(Kind.OwnScope, true, SimulatedMachine),
        ["GET /api/v1/machines"] = new(Kind.OwnScope, false),
        ["GET /api/v1/machines/{machineId}"] = new(Kind.TenantResource, false),
        ["POST /api/v1/machines/{machineId}/start"] = new(Kind.TenantResource, true),
        ["POST /api/v1/machines/{machineId}/stop"] = new(Kind.TenantResource, true),
        ["POST /api/v1/machines/{machineId}/pause"] = new(Kind.TenantResource, true),
        ["POST /api/v1/machines/{machineId}/resume"] = new(Kind.TenantResource, true),
        ["PATCH /api/v1/machines/{machineId}/lifecycle"] = new(Kind.TenantResource, true, new { ttlSeconds = 3600 }),
        ["POST /api/v1/machines/{machineId}/keepalive"] = new(Kind.TenantResource, true),
        ["POST /api/v1/machines/{machineId}/snapshots"] = new(Kind.TenantResource, true, new { name = "matrix" }),
        ["POST /api/v1/machines/{machineId}/fork"] = new(Kind.TenantResource, true, new { count = 1 }),
        ["GET /api/v1/snapshots"] = new(Kind.OwnScope, false),
        ["GET /api/v1/snapshots/{snapshotId}"] = new(Kind.TenantResource, false),
        ["DELETE /api/v1/snapshots/{snapshotId}"] = new(Kind.TenantResource, true),
        ["POST /api/v1/machines/{machineId}/restart"] = new(Kind.TenantResource, true),
        ["POST /api/v1/machines/{machineId}/recreate"] = new(Kind.TenantResource, true),
        ["DELETE /api/v1/machines/{machineId}"] = new(Kind.TenantResource, true),
        ["GET /api/v1/machines/{machineId}/wait"] = new(Kind.TenantResource, false),
        ["GET /api/v1/machines/{machineId}/events"] = new(Kind.TenantResource, false),
        ["GET /api/v1/machines/{machineId}/metrics"] = new(Kind.TenantResource, false),
        ["GET /api/v1/machines/{machineId}/health"] = new(Kind.TenantResource, false),
        ["GET /api/v1/costs"] = new(Kind.OwnScope, false),
        ["GET /api/v1/hosts/{hostId}/metrics"] = new(Kind.PlatformAdmin, false),
        ["GET /api/v1/operations/{operationId}"] = new(Kind.TenantResource, false),
        ["GET /api/v1/hosts"] = new(Kind.PlatformAdmin, false),
        ["GET /api/v1/networks"] = new(Kind.OwnScope, false),
        ["GET /api/v1/healing/policy"] = new(Kind.OwnScope, false),
        ["PUT /api/v1/healing/policy"] = new(Kind.OwnScope, true, new { enabled = false, maxAttempts = 1, initialBackoffSeconds = 1, maxBackoffSeconds = 1, resetAfterSeconds = 1 }),
        ["GET /api/v1/healing/machines"] = new(Kind.OwnScope, false),
        ["POST /api/v1/automation/healing/execute"] = new(Kind.OwnScope, true, new { machineId = Guid.Empty }),
        ["GET /api/v1/exit-nodes"] = new(Kind.OwnScope, false),
        ["POST /api/v1/exit-nodes"] = new(Kind.OwnScope, true, ExitNodeTests.ValidNode),
        ["GET /api/v1/exit-nodes/{exitNodeId}"] = new(Kind.TenantResource, false),
        ["PATCH /api/v1/exit-nodes/{exitNodeId}"] = new(Kind.TenantResource, true, new { exitAddress = "198.51.100.99" }),
        ["DELETE /api/v1/exit-nodes/{exitNodeId}"] = new(Kind.TenantResource, true),
        ["GET /api/v1/tunnels"] = new(Kind.OwnScope, false),
        ["GET /api/v1/tunnels/{machineId}"] = new(Kind.TenantResource, false),
        ["POST /api/v1/machines/{machineId}/ports"] = new(Kind.TenantResource, true, new { port = 8080 }),
        ["GET /api/v1/machines/{machineId}/ports"] = new(Kind.TenantResource, false),
        ["GET /api/v1/machines/{machineId}/ports/{forwardId}"] = new(Kind.TenantResource, false),
        ["DELETE /api/v1/machines/{machineId}/ports/{forwardId}"] = new(Kind.TenantResource, true),
        ["GET /api/v1/port-forwards"] = new(Kind.OwnScope, false),
        ["GET /api/v1/networks/pools"] = new(Kind.PlatformAdmin, false),
        ["POST /api/v1/networks/pools"] = new(Kind.PlatformAdmin, true, new { name = "matrix", cidr = "10.200.0.0/16", subnetPrefixLength = 24 }),
        ["GET /api/v1/templates"] = new(Kind.OwnScope, false),
        ["POST /api/v1/machines/{machineId}/exec"] = new(Kind.TenantResource, true, new { command = new[] { "true" } }),
        ["GET /api/v1/machines/{machineId}/processes"] = new(Kind.TenantResource, false),
        ["GET /api/v1/machines/{machineId}/processes/{processId}"] = new(Kind.TenantResource, false),
        ["GET /api/v1/machines/{machineId}/processes/{processId}/output"] = new(Kind.TenantResource, false),
        ["POST /api/v1/machines/{machineId}/processes/{processId}/stdin"] = new(Kind.TenantResource, true, "x"),
        ["POST /api/v1/machines/{machineId}/processes/{processId}/signal"] = new(Kind.TenantResource, true, new { signal = "TERM" }),
        ["POST /api/v1/machines/{machineId}/processes/{processId}/resize"] = new(Kind.TenantResource, true, new { columns = 100, rows = 30 }),
        ["GET /api/v1/machines/{machineId}/processes/{processId}/attach"] = new(Kind.TenantResource, true),
        ["GET /api/v1/machines/{machineId}/console"] = new(Kind.TenantResource, true),
        ["GET /api/v1/machines/{machineId}/files/{path}"] = new(Kind.TenantResource, false),
        ["PUT /api/v1/machines/{machineId}/files/{path}"] = new(Kind.TenantResource, true, "x"),
        ["DELETE /api/v1/machines/{machineId}/files/{path}"] = new(Kind.TenantResource, true),
        ["GET /api/v1/machines/{machineId}/archive/{path}"] = new(Kind.TenantResource, false),
        ["PUT /api/v1/machines/{machineId}/archive/{path}"] = new(Kind.TenantResource, true, "x"),
        ["GET /api/v1/machines/{machineId}/logs"] = new(Kind.TenantResource, false),
        ["PUT /api/v1/governance/guardrails"] = new(Kind.PlatformAdmin, true, new { reservedHostMemoryMiB = 1024, maxMachinesPerHost = 10, maxVcpuOvercommit = 2.0 }),
    };

    [Fact]
    public async Task Every_route_keeps_tenants_apart_refuses_viewers_changes_and_bad_credentials()
    {
        using var admin = await stack.AdminAsync();
        var routes = await PublicRoutesAsync();
        var unclassified = routes.Where(r => !Matrix.ContainsKey(r)).ToArray();
        Assert.True(unclassified.Length == 0, $"routes missing from the isolation matrix: {string.Join(", ", unclassified)}");

        var (tenantA, adminOfA) = await admin.CreateTenantWithAdminAsync();
        var (tenantB, adminOfB) = await admin.CreateTenantWithAdminAsync();
        var keyOfA = await CreateKeyAsync(adminOfA, Roles.TenantAdmin);
        var keyOfB = await CreateKeyAsync(adminOfB, Roles.Member);
        var viewerName = $"viewer-{Guid.NewGuid():N}"[..20];
        Assert.Equal(HttpStatusCode.Created, (await adminOfA.PostAsJsonAsync($"/api/v1/tenants/{tenantA}/users", new { username = viewerName, password = Password, role = Roles.Viewer })).StatusCode);
        using var viewerOfA = await stack.LoginAsync(viewerName, Password);
        var revoked = await CreateKeyAsync(adminOfA, Roles.Member);
        await using var receiver = await WebhookReceiver.StartAsync();
        var (subscriptionOfA, _) = await WebhookTests.SubscribeAsync(adminOfA, receiver, null);
        var (subscriptionOfB, _) = await WebhookTests.SubscribeAsync(adminOfB, receiver, null);
        var (machineOfA, _) = await CreateMachineAsync(adminOfA);
        var (machineOfB, operationOfB) = await CreateMachineAsync(adminOfB);
        var snapshotOfA = await CreateSnapshotAsync(adminOfA, machineOfA);
        var snapshotOfB = await CreateSnapshotAsync(adminOfB, machineOfB);
        var exitNodeOfA = await CreateExitNodeAsync(adminOfA);
        var exitNodeOfB = await CreateExitNodeAsync(adminOfB);
        var hostId = (await admin.GetFromJsonAsync<JsonElement>("/api/v1/hosts")).EnumerateArray().First().GetProperty("id").GetGuid();
        Assert.Equal(HttpStatusCode.NoContent, (await adminOfA.DeleteAsync($"/api/v1/api-keys/{revoked.Id}")).StatusCode);
        await Task.Delay(TimeSpan.FromSeconds(6)); // longer than the gateway caches an API key's answer (5 s)

        var callersOfA = new[] { ("token", adminOfA), ("api key", PlatformApi.WithApiKey(await stack.AnonymousAsync(), keyOfA.Key)) };
        var badCallers = new[]
        {
            ("no credentials", await stack.AnonymousAsync()),
            ("a revoked key", PlatformApi.WithApiKey(await stack.AnonymousAsync(), revoked.Key)),
            ("a token with a bad signature", PlatformApi.WithToken(await stack.AnonymousAsync(), Tampered(adminOfA.DefaultRequestHeaders.Authorization!.Parameter!))),
        };
        var failures = new List<string>();
        foreach (var route in routes)
        {
            var entry = Matrix[route];
            var (method, template) = Split(route);
            var onB = template.Replace("{tenantId}", tenantB.ToString(), StringComparison.Ordinal).Replace("{keyId}", keyOfB.Id.ToString(), StringComparison.Ordinal)
                .Replace("{subscriptionId}", subscriptionOfB.ToString(), StringComparison.Ordinal)
                .Replace("{machineId}", machineOfB.ToString(), StringComparison.Ordinal).Replace("{operationId}", operationOfB.ToString(), StringComparison.Ordinal)
                .Replace("{exitNodeId}", exitNodeOfB.ToString(), StringComparison.Ordinal).Replace("{hostId}", hostId.ToString(), StringComparison.Ordinal)
                .Replace("{forwardId}", Guid.NewGuid().ToString(), StringComparison.Ordinal)
                .Replace("{processId}", Guid.NewGuid().ToString(), StringComparison.Ordinal).Replace("{path}", "scratch/x", StringComparison.Ordinal)
                .Replace("{snapshotId}", snapshotOfB.ToString(), StringComparison.Ordinal);
            var onA = template.Replace("{tenantId}", tenantA.ToString(), StringComparison.Ordinal).Replace("{keyId}", revoked.Id.ToString(), StringComparison.Ordinal)
                .Replace("{subscriptionId}", subscriptionOfA.ToString(), StringComparison.Ordinal)
                .Replace("{machineId}", machineOfA.ToString(), StringComparison.Ordinal)
                .Replace("{exitNodeId}", exitNodeOfA.ToString(), StringComparison.Ordinal).Replace("{hostId}", hostId.ToString(), StringComparison.Ordinal)
                .Replace("{forwardId}", Guid.NewGuid().ToString(), StringComparison.Ordinal)
                .Replace("{processId}", Guid.NewGuid().ToString(), StringComparison.Ordinal).Replace("{path}", "scratch/x", StringComparison.Ordinal)
                .Replace("{snapshotId}", snapshotOfA.ToString(), StringComparison.Ordinal);

            foreach (var (how, caller) in callersOfA)
            {
                var expected = entry.Kind switch
                {
                    Kind.TenantResource => HttpStatusCode.NotFound,
                    Kind.PlatformAdmin => HttpStatusCode.Forbidden,
                    _ => (HttpStatusCode?)null,
                };
                if (expected is { } status)
                {
                    await ExpectAsync(failures, $"{route} by tenant A's {how} on B", caller, method, onB, entry.Body, status);
                }
            }

            if (entry.Mutates && entry.Kind != Kind.Public)
            {
                await ExpectAsync(failures, $"{route} by a viewer of A", viewerOfA, method, onA, entry.Body, HttpStatusCode.Forbidden);
            }

            if (entry.Kind != Kind.Public)
            {
                foreach (var (how, caller) in badCallers)
                {
                    await ExpectAsync(failures, $"{route} with {how}", caller, method, onA, entry.Body, HttpStatusCode.Unauthorized);
                }
            }
        }

        var visibleToA = await adminOfA.GetFromJsonAsync<JsonElement>("/api/v1/tenants");
        Assert.Equal([tenantA], visibleToA.GetProperty("items").EnumerateArray().Select(t => t.GetProperty("id").GetGuid()));
        Assert.DoesNotContain(keyOfB.Id.ToString(), await adminOfA.GetStringAsync("/api/v1/api-keys"), StringComparison.Ordinal);
        Assert.DoesNotContain(machineOfB.ToString(), await adminOfA.GetStringAsync("/api/v1/machines"), StringComparison.Ordinal);
        Assert.Equal("running", (await adminOfB.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{machineOfB}")).GetProperty("state").GetString());
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    private async Task<IReadOnlyList<string>> PublicRoutesAsync()
    {
        using var anonymous = await stack.AnonymousAsync();
        var routes = new List<string>();
        foreach (var service in PlatformStack.Services)
        {
            var document = await anonymous.GetFromJsonAsync<JsonElement>($"/api/v1/{service}/openapi.json");
            foreach (var path in document.GetProperty("paths").EnumerateObject())
            {
                // /internal/… is not routed by the gateway; /openapi.json is the document itself.
                if (!path.Name.StartsWith("/api/v1/", StringComparison.Ordinal) || path.Name.EndsWith("/openapi.json", StringComparison.Ordinal))
                {
                    continue;
                }

                routes.AddRange(path.Value.EnumerateObject().Select(operation => $"{operation.Name.ToUpperInvariant()} {path.Name}"));
            }
        }

        return routes;
    }

    private static async Task ExpectAsync(List<string> failures, string what, HttpClient client, string method, string path, object? body, HttpStatusCode expected)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (body is not null)
        {
            request.Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");
        }

        using var response = await client.SendAsync(request);
        if (response.StatusCode != expected)
        {
            failures.Add($"{what}: expected {(int)expected}, got {(int)response.StatusCode}");
        }
    }

    private static async Task<(Guid Machine, Guid Operation)> CreateMachineAsync(HttpClient tenantAdmin)
    {
        var created = await tenantAdmin.PostAsJsonAsync("/api/v1/machines", SimulatedMachine);
        Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
        var body = await created.Content.ReadFromJsonAsync<JsonElement>();
        var machine = body.GetProperty("id").GetGuid();
        await tenantAdmin.WaitForMachineAsync(machine, "running");
        return (machine, body.GetProperty("operationId").GetGuid());
    }

    private static async Task<Guid> CreateSnapshotAsync(HttpClient tenantAdmin, Guid machine)
    {
        var taken = await tenantAdmin.PostAsJsonAsync($"/api/v1/machines/{machine}/snapshots", new { });
        Assert.Equal(HttpStatusCode.Accepted, taken.StatusCode);
        var id = (await taken.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        await tenantAdmin.WaitForSnapshotAsync(id, "ready");
        return id;
    }

    private static async Task<Guid> CreateExitNodeAsync(HttpClient tenantAdmin)
    {
        var created = await tenantAdmin.PostAsJsonAsync("/api/v1/exit-nodes", ExitNodeTests.ValidNode);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        return (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
    }

    private static (string Method, string Path) Split(string route) => (route[..route.IndexOf(' ')], route[(route.IndexOf(' ') + 1)..]);

    private static Task<ApiKeyCreated> CreateKeyAsync(HttpClient tenantAdmin, string role) =>
        tenantAdmin.CreateApiKeyAsync(new { name = "matrix", role });

    private static string Tampered(string token) => token[..^6] + (token[^6] == 'A' ? "BBBBBB" : "AAAAAA");
}
