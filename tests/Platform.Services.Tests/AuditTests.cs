using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using MassTransit;
using Platform.Contracts.Tenancy;
using Platform.Hosting.Security;
using Platform.Testing;

namespace Platform.Services.Tests;

[Collection(StackCollection.Name)]
public sealed class AuditTests(PlatformStack stack)
{
    [Fact]
    public async Task Every_service_event_lands_in_the_audit_log_once_with_where_it_came_from_and_who_caused_it()
    {
        using var admin = await stack.AdminAsync();
        var adminId = (await admin.GetFromJsonAsync<JsonElement>("/api/v1/users/me")).GetProperty("id").GetGuid();
        var (tenant, _) = await admin.CreateTenantWithAdminAsync();

        var created = await EventuallyAsync(admin, $"/api/v1/audit?type=TenantCreated&stream=tenant-{tenant}", 1);

        var entry = Assert.Single(created);
        Assert.Equal("tenancy", entry.GetProperty("source").GetString());
        Assert.Equal($"user:{adminId}", entry.GetProperty("actor").GetString());
        Assert.Equal(tenant, entry.GetProperty("tenantId").GetGuid());
        Assert.Equal(tenant, entry.GetProperty("data").GetProperty("tenantId").GetGuid());
        var started = await EventuallyAsync(admin, "/api/v1/audit?type=ServiceStarted&limit=1000", PlatformStack.Services.Length);
        Assert.Equal(PlatformStack.Services.Order(), started.Select(e => e.GetProperty("source").GetString()!).Distinct().Order());

        // The same event delivered twice (as after a relay crash) is recorded once.
        await using var bus = await TestBus.StartAsync(stack.Environment.VirtualHost, "audit-test", _ => { }, _ => { });
        var eventId = Guid.CreateVersion7();
        var duplicate = new MachineRegistered(Guid.CreateVersion7(), tenant, "dup", "sandbox", "user:x", DateTimeOffset.UtcNow);
        await bus.Bus.Publish(duplicate, context => context.MessageId = eventId);
        await bus.Bus.Publish(duplicate, context => context.MessageId = eventId);
        // The newest first: by now the suite has registered more machines than a page holds.
        await EventuallyAsync(admin, $"/api/v1/audit?type=MachineRegistered&newest=true&limit=100", 1, e => e.GetProperty("eventId").GetGuid() == eventId);
        await Task.Delay(1000);
        Assert.Single(await PageAsync(admin, "/api/v1/audit?type=MachineRegistered&limit=1000"), e => e.GetProperty("eventId").GetGuid() == eventId);
    }

    [Fact]
    public async Task A_tenant_reads_only_its_own_audit_trail_in_global_order()
    {
        using var admin = await stack.AdminAsync();
        var (tenantA, adminOfA) = await admin.CreateTenantWithAdminAsync();
        var (tenantB, _) = await admin.CreateTenantWithAdminAsync();
        await EventuallyAsync(admin, $"/api/v1/audit?type=UserCreated&limit=1000", 1, e => e.TryGetProperty("tenantId", out var t) && t.GetGuid() == tenantB);

        var seen = await PageAsync(adminOfA, "/api/v1/audit?limit=1000");

        Assert.NotEmpty(seen);
        Assert.All(seen, e => Assert.Equal(tenantA, e.GetProperty("tenantId").GetGuid()));
        var positions = seen.Select(e => e.GetProperty("position").GetInt64()).ToArray();
        Assert.Equal(positions.Order(), positions);
    }

    [Fact]
    public async Task The_newest_entries_of_a_tenants_audit_trail_are_its_last_ones_still_in_order()
    {
        using var admin = await stack.AdminAsync();
        var (tenant, adminOfTenant) = await admin.CreateTenantWithAdminAsync();
        for (var i = 0; i < 3; i++)
        {
            await CreateMemberAsync(adminOfTenant, tenant);
        }

        var all = await EventuallyAsync(adminOfTenant, "/api/v1/audit?type=UserCreated&limit=1000", 4);
        var newest = await adminOfTenant.GetFromJsonAsync<JsonElement>("/api/v1/audit?type=UserCreated&limit=2&newest=true");

        Assert.Equal(all.TakeLast(2).Select(e => e.GetProperty("position").GetInt64()), newest.GetProperty("items").EnumerateArray().Select(e => e.GetProperty("position").GetInt64()));
        Assert.False(newest.TryGetProperty("nextCursor", out var next) && next.ValueKind != JsonValueKind.Null, "nothing comes after the newest entries yet");
    }

    [Fact]
    public async Task The_correlation_id_of_a_request_follows_its_events_into_the_audit_log()
    {
        using var admin = await stack.AdminAsync();
        var correlation = Guid.CreateVersion7();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/tenants") { Content = JsonContent.Create(new { slug = $"corr-{Guid.NewGuid():N}"[..20], name = "Correlated" }) };
        request.Headers.Add("X-Correlation-Id", correlation.ToString("N"));

        var created = await admin.SendAsync(request);
        var tenant = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();

        var entry = Assert.Single(await EventuallyAsync(admin, $"/api/v1/audit?type=TenantCreated&stream=tenant-{tenant}", 1));
        Assert.Equal(correlation, entry.GetProperty("correlationId").GetGuid());
        Assert.Equal(correlation.ToString("N"), created.Headers.GetValues("X-Correlation-Id").Single());
    }

    [Fact]
    public async Task Malformed_audit_queries_are_refused_with_the_field_named()
    {
        using var admin = await stack.AdminAsync();

        foreach (var (query, field) in new[] { ("after=-3", "after"), ("from=yesterday", "from"), ("type=NoSuchEvent", "type"), ("limit=0", "limit"), ("cursor=abc", "cursor") })
        {
            var problem = await Problems.AssertAsync(await admin.GetAsync($"/api/v1/audit?{query}"), HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
            Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), $"{query} names {field}");
        }
    }

    [Fact]
    public async Task A_live_stream_client_that_disconnects_resumes_with_last_event_id_and_misses_nothing()
    {
        using var admin = await stack.AdminAsync();
        var (tenant, tenantAdmin) = await admin.CreateTenantWithAdminAsync();
        var expected = new List<string>();
        // Start after what the tenant's audit trail holds already (its admin's creation).
        var start = (await EventuallyAsync(tenantAdmin, "/api/v1/audit?type=UserCreated", 1))[^1].GetProperty("position").GetInt64();

        var first = new List<(long Id, string Username)>();
        using (var stream = await OpenStreamAsync(tenantAdmin, start))
        {
            for (var i = 0; i < 5; i++)
            {
                expected.Add(await CreateMemberAsync(tenantAdmin, tenant));
            }

            while (first.Count < 3)
            {
                first.Add(await NextUserCreatedAsync(stream));
            }
        }

        for (var i = 0; i < 5; i++)
        {
            expected.Add(await CreateMemberAsync(tenantAdmin, tenant));
        }

        var rest = new List<(long Id, string Username)>();
        using (var resumed = await OpenStreamAsync(tenantAdmin, first[^1].Id))
        {
            while (first.Count + rest.Count < expected.Count)
            {
                rest.Add(await NextUserCreatedAsync(resumed));
            }
        }

        var all = first.Concat(rest).ToArray();
        Assert.Equal(expected, all.Select(e => e.Username));
        Assert.Equal(all.Select(e => e.Id).Order(), all.Select(e => e.Id));
    }

    private static async Task<string> CreateMemberAsync(HttpClient tenantAdmin, Guid tenant)
    {
        var username = $"live-{Guid.NewGuid():N}"[..20];
        var response = await tenantAdmin.PostAsJsonAsync($"/api/v1/tenants/{tenant}/users", new { username, password = "correct horse battery staple", role = Roles.Viewer });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return username;
    }

    private static async Task<StreamReader> OpenStreamAsync(HttpClient client, long? lastEventId)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/api/v1/events?type=UserCreated");
        if (lastEventId is { } id)
        {
            request.Headers.Add("Last-Event-ID", id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        return new StreamReader(await response.Content.ReadAsStreamAsync());
    }

    /// <summary>Reads frames until one carries an event; returns its id and the created username.</summary>
    private static async Task<(long Id, string Username)> NextUserCreatedAsync(StreamReader stream)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        long? id = null;
        while (await stream.ReadLineAsync(timeout.Token) is { } line)
        {
            if (line.StartsWith("id: ", StringComparison.Ordinal))
            {
                id = long.Parse(line[4..], System.Globalization.CultureInfo.InvariantCulture);
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal) && id is { } position)
            {
                var data = JsonDocument.Parse(line[6..]).RootElement;
                return (position, data.GetProperty("data").GetProperty("username").GetString()!);
            }
        }

        throw new EndOfStreamException("the live stream ended");
    }

    private static async Task<IReadOnlyList<JsonElement>> PageAsync(HttpClient client, string path) =>
        (await client.GetFromJsonAsync<JsonElement>(path)).GetProperty("items").EnumerateArray().ToArray();

    private static async Task<IReadOnlyList<JsonElement>> EventuallyAsync(HttpClient client, string path, int atLeast, Func<JsonElement, bool>? where = null)
    {
        IReadOnlyList<JsonElement> found = [];
        await Eventually.TrueAsync(async () =>
        {
            found = (await PageAsync(client, path)).Where(where ?? (_ => true)).ToArray();
            return found.Count >= atLeast;
        }, TimeSpan.FromSeconds(30), $"{path} shows {atLeast} entries");
        return found;
    }
}
