using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Xunit;

namespace Platform.Testing;

/// <summary>A tenant and a client signed in as its tenant-admin.</summary>
public sealed record TenantAdmin(Guid TenantId, HttpClient Client);

/// <summary>An API key as its creation answers it: the key itself is shown this once.</summary>
public sealed record ApiKeyCreated(Guid Id, string Key);

/// <summary>A subscription of kind amqp as its creation answers it: its AMQP URL holds the password, shown this once.</summary>
public sealed record AmqpSubscription(Guid Id, string Url, string Queue);

/// <summary>
/// The public API as the tests call it through the gateway, on a client that carries its caller's credential: tenants
/// and their admins, API keys, machines and their operations. Each call asserts what a caller may rely on (the status
/// of a creation, a machine reaching a state) and answers with what the test reads next.
/// </summary>
public static class PlatformApi
{
    public const string TenantAdminPassword = "correct horse battery staple";

    /// <summary>A new tenant (as a platform-admin) with a tenant-admin user, and a client signed in as that user.</summary>
    public static async Task<TenantAdmin> CreateTenantWithAdminAsync(this HttpClient platformAdmin)
    {
        var tenant = await platformAdmin.CreateTenantAsync();
        var username = $"admin-{Guid.NewGuid():N}"[..20];
        var user = await platformAdmin.PostAsJsonAsync($"/api/v1/tenants/{tenant}/users", new { username, password = TenantAdminPassword, role = "tenant-admin" });
        Assert.Equal(HttpStatusCode.Created, user.StatusCode);
        return new TenantAdmin(tenant, await platformAdmin.LoginAsync(username, TenantAdminPassword));
    }

    /// <summary>A new tenant with a unique slug (as a platform-admin).</summary>
    public static async Task<Guid> CreateTenantAsync(this HttpClient platformAdmin)
    {
        var response = await platformAdmin.PostAsJsonAsync("/api/v1/tenants", new { slug = $"t-{Guid.NewGuid():N}"[..20], name = "Tenant" });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
    }

    /// <summary>A new client of the same gateway, signed in as <paramref name="username"/>.</summary>
    public static async Task<HttpClient> LoginAsync(this HttpClient any, string username, string password)
    {
        var response = await any.PostAsJsonAsync("/api/v1/auth/token", new { username, password });
        response.EnsureSuccessStatusCode();
        var token = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("accessToken").GetString()!;
        return new HttpClient { BaseAddress = any.BaseAddress }.WithToken(token);
    }

    public static HttpClient WithToken(this HttpClient client, string token)
    {
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    /// <summary><c>POST /api/v1/api-keys</c>: 201 with the key.</summary>
    public static async Task<ApiKeyCreated> CreateApiKeyAsync(this HttpClient tenantAdmin, object request)
    {
        var response = await tenantAdmin.PostAsJsonAsync("/api/v1/api-keys", request);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        return new ApiKeyCreated(body.GetProperty("id").GetGuid(), body.GetProperty("key").GetString()!);
    }

    /// <summary><c>POST /api/v1/subscriptions {"kind": "amqp"}</c>: 201 with the queue and its credentials.</summary>
    public static async Task<AmqpSubscription> CreateAmqpSubscriptionAsync(this HttpClient client)
    {
        var response = await client.PostAsJsonAsync("/api/v1/subscriptions", new { kind = "amqp" });
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        var amqp = body.GetProperty("amqp");
        return new AmqpSubscription(body.GetProperty("id").GetGuid(), amqp.GetProperty("url").GetString()!, amqp.GetProperty("queue").GetString()!);
    }

    public static HttpClient WithApiKey(this HttpClient client, string key)
    {
        client.DefaultRequestHeaders.Add("X-Api-Key", key);
        return client;
    }

    /// <summary><c>POST /api/v1/machines</c>: 202; the new machine's id.</summary>
    public static async Task<Guid> CreateMachineAsync(this HttpClient tenant, object body)
    {
        var created = await tenant.PostAsJsonAsync("/api/v1/machines", body);
        Assert.True(created.StatusCode == HttpStatusCode.Accepted, await created.Content.ReadAsStringAsync());
        return (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
    }

    /// <summary><c>GET /api/v1/machines/{id}/wait?state=…&amp;timeout=60s</c>: 200; the machine in that state.</summary>
    public static async Task<JsonElement> WaitForMachineAsync(this HttpClient tenant, Guid id, string state)
    {
        var response = await tenant.GetAsync($"/api/v1/machines/{id}/wait?state={state}&timeout=60s");
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"machine {id} did not become {state}: {await response.Content.ReadAsStringAsync()}");
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    /// <summary><c>GET /api/v1/machines/{id}/events</c>: the types of the machine's events, oldest first.</summary>
    public static async Task<IReadOnlyList<string>> MachineEventTypesAsync(this HttpClient tenant, Guid id) =>
        (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/events")).EnumerateArray().Select(e => e.GetProperty("type").GetString()!).ToList();

    /// <summary>Polls <c>GET /api/v1/snapshots/{id}</c> until the snapshot is in <paramref name="state"/> (at most a minute); the snapshot.</summary>
    public static async Task<JsonElement> WaitForSnapshotAsync(this HttpClient tenant, Guid id, string state)
    {
        var snapshot = default(JsonElement);
        await Eventually.TrueAsync(async () =>
        {
            snapshot = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/snapshots/{id}");
            return snapshot.GetProperty("state").GetString() == state || snapshot.GetProperty("state").GetString() == "failed";
        }, TimeSpan.FromSeconds(60), $"snapshot {id} becomes {state}");
        Assert.True(snapshot.GetProperty("state").GetString() == state, $"snapshot {id} is not {state}: {snapshot}");
        return snapshot;
    }

    /// <summary>Polls an operation (its location) until it is no longer pending (at most two minutes); the operation.</summary>
    public static async Task<JsonElement> WaitForOperationAsync(this HttpClient tenant, Uri operation)
    {
        var view = default(JsonElement);
        await Eventually.TrueAsync(async () =>
        {
            view = await tenant.GetFromJsonAsync<JsonElement>(operation);
            return view.GetProperty("status").GetString() != "pending";
        }, TimeSpan.FromSeconds(120), $"operation {operation} ends");
        return view;
    }

    /// <summary>An asynchronous action (<c>/start</c>, <c>DELETE</c>, …): 202; the operation's location.</summary>
    public static async Task<Uri> ActAsync(this HttpClient tenant, HttpMethod method, string path)
    {
        var response = await tenant.SendAsync(new HttpRequestMessage(method, path));
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"{method} {path}: {await response.Content.ReadAsStringAsync()}");
        return response.Headers.Location!;
    }
}

/// <summary>RFC 7807 problem details as every route answers an error.</summary>
public static class Problems
{
    /// <summary>Asserts the answer is a problem of <paramref name="status"/> and <paramref name="type"/>, with a trace id; returns it.</summary>
    public static async Task<JsonElement> AssertAsync(HttpResponseMessage response, HttpStatusCode status, string type)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(type, problem.GetProperty("type").GetString());
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrEmpty(problem.GetProperty("traceId").GetString()));
        return problem;
    }
}
