using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using Platform.EventSourcing;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>
/// Creations sent all at the same instant, with no client-side limit, to provisioning with the rest of the real stack
/// behind it (simulated driver): each is accepted or refused cleanly, never a 5xx; every accepted machine ends running or
/// failed, and a refused one leaves nothing. The calls go to provisioning as the gateway makes them: the gateway's own
/// per-tenant rate limit is not what is tested.
/// </summary>
public sealed class MachineCreationBurstTests : IAsyncLifetime
{
    private const int Line = 50;
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);
    private static readonly object Simulated = new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 16 };

    // The sandbox driver only lends its template (sandbox-host) to the simulated machines.
    private readonly PlatformStack _stack = new(["sandbox", "simulated"], ("Platform__Agent__Simulated__LaunchLatencyMs", "0"))
    {
        ServiceSettings =
        [
            ("provisioning", "Platform__Provisioning__Creation__MaxQueued", Line.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            // Long enough that here only the length of the line refuses a creation.
            ("provisioning", "Platform__Provisioning__Creation__MaxQueueWait", "00:03:00"),
            // Simulated machines take no CPU: room for all of them on the stack's one small host.
            ("provisioning", "Platform__Provisioning__DefaultGuardrails__MaxVcpuOvercommit", "1000"),
            ("tenancy", "Platform__Tenancy__DefaultGuardrails__MaxVcpuOvercommit", "1000"),
        ],
    };

    public Task InitializeAsync() => _stack.InitializeAsync();

    public Task DisposeAsync() => _stack.DisposeAsync();

    [Fact]
    public async Task Two_hundred_simultaneous_creations_are_each_accepted_or_refused_cleanly_and_every_accepted_machine_ends()
    {
        using var tenant = await TenantAsync();

        var answers = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => CreateAsync(tenant)));

        Assert.DoesNotContain(answers, a => a.Status >= 500);
        Assert.All(answers, a => Assert.True(a.Status is 202 or 429, $"{a.Status} {a.Body}"));
        AssertRefusalsAreOverloadProblems(answers);
        var accepted = answers.Where(a => a.Status == 202).Select(a => a.MachineId!.Value).ToHashSet();
        Assert.NotEmpty(accepted);

        // Every accepted creation ends, and the tenant holds exactly the accepted machines: a refusal created nothing.
        var states = new Dictionary<Guid, string>();
        await Eventually.TrueAsync(async () => (states = await StatesAsync(tenant)).Values.All(s => s is "running" or "failed"), Patience,
            "every accepted creation ends running or failed");
        Assert.Equal(accepted.Order(), states.Keys.Order());

        // The same machines destroyed at the same instant: never a 5xx either, and nothing is left.
        var destroyed = await Task.WhenAll(accepted.Select(async id =>
        {
            using var answer = await tenant.DeleteAsync($"/api/v1/machines/{id}");
            return answer.StatusCode;
        }));
        Assert.All(destroyed, status => Assert.Equal(HttpStatusCode.Accepted, status));
        await Eventually.TrueAsync(async () => (await StatesAsync(tenant)).Count == 0, Patience, "every machine is destroyed");
    }

    [Fact]
    public async Task Creations_beyond_the_line_are_refused_at_once_with_429_and_Retry_After_and_leave_nothing()
    {
        using var tenant = await TenantAsync();
        const int Beyond = 10;

        // Every append of provisioning waits behind this transaction: the first creation in line holds the turn meanwhile.
        await using var holder = await _stack.Environment.Database.DataSource.OpenConnectionAsync();
        await using var held = await holder.BeginTransactionAsync();
        await using (var take = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", holder, held) { Parameters = { new() { Value = EventStore.AppendOrderLockName("provisioning") } } })
        {
            await take.ExecuteScalarAsync();
        }

        var sent = Enumerable.Range(0, Line + Beyond).Select(_ => CreateAsync(tenant)).ToList();
        var refusedAtOnce = new List<CreateAnswer>();
        while (refusedAtOnce.Count < Beyond)
        {
            var answered = await Task.WhenAny(sent).WaitAsync(Patience);
            sent.Remove(answered);
            refusedAtOnce.Add(await answered);
        }

        await held.RollbackAsync();
        var later = await Task.WhenAll(sent);

        Assert.All(refusedAtOnce, a => Assert.Equal(429, a.Status));
        AssertRefusalsAreOverloadProblems(refusedAtOnce);
        Assert.All(later, a => Assert.True(a.Status == 202, $"{a.Status} {a.Body}"));
        var states = new Dictionary<Guid, string>();
        await Eventually.TrueAsync(async () => (states = await StatesAsync(tenant)).Count == Line && states.Values.All(s => s == "running"), Patience,
            "the creations that stood in line run");
        Assert.Equal(later.Select(a => a.MachineId!.Value).Order(), states.Keys.Order());

        await Task.WhenAll(states.Keys.Select(id => tenant.DeleteAsync($"/api/v1/machines/{id}")));
        await Eventually.TrueAsync(async () => (await StatesAsync(tenant)).Count == 0, Patience, "every machine is destroyed");
    }

    private sealed record CreateAnswer(int Status, Guid? MachineId, string? RetryAfter, string Body);

    /// <summary>A client calling provisioning as the gateway does, for a tenant-admin of a tenant of its own.</summary>
    private async Task<HttpClient> TenantAsync()
    {
        var tenant = await _stack.Service("provisioning").CreateGatewayLikeClientAsync();
        tenant.Timeout = Patience;
        tenant.DefaultRequestHeaders.Add(IdentityHeaders.Subject, "user:burst");
        tenant.DefaultRequestHeaders.Add(IdentityHeaders.Role, Roles.TenantAdmin);
        tenant.DefaultRequestHeaders.Add(IdentityHeaders.TenantId, Guid.CreateVersion7().ToString());
        return tenant;
    }

    private static async Task<CreateAnswer> CreateAsync(HttpClient tenant)
    {
        using var answer = await tenant.PostAsJsonAsync("/api/v1/machines", Simulated);
        var body = await answer.Content.ReadAsStringAsync();
        var machineId = answer.StatusCode == HttpStatusCode.Accepted ? JsonDocument.Parse(body).RootElement.GetProperty("id").GetGuid() : (Guid?)null;
        return new CreateAnswer((int)answer.StatusCode, machineId, answer.Headers.RetryAfter?.Delta?.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture), body);
    }

    private static void AssertRefusalsAreOverloadProblems(IEnumerable<CreateAnswer> answers)
    {
        foreach (var refused in answers.Where(a => a.Status == 429))
        {
            var problem = JsonDocument.Parse(refused.Body).RootElement;
            Assert.Equal(ProblemTypes.Overloaded, problem.GetProperty("type").GetString());
            Assert.True(double.TryParse(refused.RetryAfter, System.Globalization.CultureInfo.InvariantCulture, out var seconds) && seconds >= 1, $"Retry-After: {refused.RetryAfter}");
        }
    }

    private static async Task<Dictionary<Guid, string>> StatesAsync(HttpClient tenant)
    {
        var states = new Dictionary<Guid, string>();
        string? cursor = null;
        do
        {
            var page = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines?limit=500{(cursor is null ? "" : $"&cursor={cursor}")}");
            foreach (var machine in page.GetProperty("items").EnumerateArray())
            {
                states[machine.GetProperty("id").GetGuid()] = machine.GetProperty("state").GetString()!;
            }

            cursor = page.TryGetProperty("nextCursor", out var next) && next.ValueKind == JsonValueKind.String ? next.GetString() : null;
        }
        while (cursor is not null);

        return states;
    }
}
