using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>Machines' and hosts' metric series, their rollups and retention, and what machines cost, through the gateway on the real stack.</summary>
[Collection(StackCollection.Name)]
public sealed class MachineMetricsTests(PlatformStack stack)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_busy_sandbox_reports_cpu_and_memory_within_a_few_intervals_and_step_aggregates_its_samples()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var started = DateTimeOffset.UtcNow.AddSeconds(-5);
        var id = await tenant.CreateMachineAsync(new { name = "busy", kind = "sandbox", vcpus = 1, memoryMiB = 64, command = new[] { "/bin/sh", "-c", "while :; do :; done" } });
        await tenant.WaitForMachineAsync(id, "running");

        JsonElement[] points = [];
        await Eventually.TrueAsync(async () =>
        {
            points = await PointsAsync(tenant, id, started, "1s");
            return points.Count(p => p.GetProperty("cpuCores").GetDouble() > 0.2) >= 3;
        }, Patience, "a busy loop's CPU shows in its samples within a few intervals");

        Assert.All(points, p =>
        {
            Assert.True(p.GetProperty("memoryBytes").GetInt64() > 0);
            Assert.Equal(64L * 1024 * 1024, p.GetProperty("memoryLimitBytes").GetInt64());
            Assert.True(p.GetProperty("processes").GetInt32() >= 1);
            Assert.True(p.GetProperty("cpuCores").GetDouble() <= 1.1, "the cgroup holds it to its one vCPU");
        });
        var to = DateTimeOffset.UtcNow;
        var fine = await SeriesAsync(tenant, id, started, to, "1s");
        var coarse = await SeriesAsync(tenant, id, started, to, "10s");
        Assert.Equal("raw", coarse.GetProperty("resolution").GetString());
        AssertDocumented("machine-metrics", coarse, "points");
        Assert.Equal(Samples(fine), Samples(coarse));
        Assert.Contains(coarse.GetProperty("points").EnumerateArray(), p => p.GetProperty("samples").GetInt32() > 1);
        Assert.True(coarse.GetProperty("points").GetArrayLength() < fine.GetProperty("points").GetArrayLength());

        // Once it is gone its series is complete: the minutes covering it hold exactly its samples.
        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
        var (firstMinute, afterLastMinute) = (Minute(started), Minute(DateTimeOffset.UtcNow).AddMinutes(1));
        await Task.Delay(TimeSpan.FromSeconds(2));
        var all = Samples(await SeriesAsync(tenant, id, firstMinute, afterLastMinute, "1s"));
        await Eventually.TrueAsync(async () =>
        {
            var minutes = await SeriesAsync(tenant, id, firstMinute, afterLastMinute, "1m");
            return minutes.GetProperty("resolution").GetString() == "1m" && Samples(minutes) == all;
        }, Patience, "the 1-minute rollup holds every sample");
    }

    [Fact]
    public async Task Old_samples_are_rolled_up_into_minutes_and_hours_and_each_resolution_expires_after_its_retention()
    {
        using var admin = await stack.AdminAsync();
        var host = Guid.NewGuid();
        var now = DateTimeOffset.UtcNow;
        var threeDaysAgo = new DateTimeOffset(now.Year, now.Month, now.Day, 0, 0, 0, TimeSpan.Zero).AddDays(-3).AddMinutes(7);
        var tenDaysAgo = threeDaysAgo.AddDays(-7);
        await InsertRawAsync(host, (threeDaysAgo, 0.5, 100), (threeDaysAgo.AddSeconds(10), 1.5, 300), (threeDaysAgo.AddSeconds(20), 1.0, 200),
            (tenDaysAgo, 2.0, 400), (tenDaysAgo.AddSeconds(30), 0.0, 600), (now.AddDays(-100), 1.0, 1));

        await Eventually.TrueAsync(async () => await CountAsync(host, 0) == 0, Patience, "the raw samples past their retention are rolled up and deleted");

        Assert.Equal(1L, await CountAsync(host, 60)); // the 10-day-old minute has expired; the 3-day-old one is kept
        Assert.Equal(2L, await CountAsync(host, 3600)); // the 100-day-old hour has expired
        var minutes = await admin.GetFromJsonAsync<JsonElement>(
            $"/api/v1/hosts/{host}/metrics?from={Iso(threeDaysAgo.AddHours(-1))}&to={Iso(threeDaysAgo.AddHours(1))}&step=1m");
        Assert.Equal("1m", minutes.GetProperty("resolution").GetString());
        AssertDocumented("host-metrics", minutes, "points");
        var minute = Assert.Single(minutes.GetProperty("points").EnumerateArray());
        Assert.Equal(3, minute.GetProperty("samples").GetInt32());
        Assert.Equal(1.0, minute.GetProperty("cpuCores").GetDouble(), 3);
        Assert.Equal(1.5, minute.GetProperty("cpuCoresMax").GetDouble(), 3);
        Assert.Equal(200, minute.GetProperty("memoryBytes").GetInt64());
        Assert.Equal(300, minute.GetProperty("memoryBytesMax").GetInt64());
        var hours = await admin.GetFromJsonAsync<JsonElement>($"/api/v1/hosts/{host}/metrics?from={Iso(tenDaysAgo.AddHours(-1))}&to={Iso(now)}&step=1d");
        Assert.Equal("1h", hours.GetProperty("resolution").GetString());
        Assert.Equal([2, 3], hours.GetProperty("points").EnumerateArray().Select(p => p.GetProperty("samples").GetInt32()));
    }

    [Fact]
    public async Task A_machines_cost_per_hour_follows_the_price_table_for_its_shape_and_accrues_while_it_runs()
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var since = DateTimeOffset.UtcNow.AddMinutes(-1);
        var id = await tenant.CreateMachineAsync(new { name = "billed", kind = "sandbox", vcpus = 1, memoryMiB = 256 });
        await tenant.WaitForMachineAsync(id, "running");
        await Task.Delay(TimeSpan.FromSeconds(2));

        var costs = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/costs?from={Iso(since)}");

        // The documented default sandbox prices: 0.0100 per vCPU-hour and 0.0020 per GiB-hour of memory.
        var expectedPerHour = 1 * 0.0100m + 0.25m * 0.0020m;
        AssertDocumented("costs", costs, "items");
        var machine = Assert.Single(costs.GetProperty("items").EnumerateArray());
        Assert.Equal(id, machine.GetProperty("machineId").GetGuid());
        Assert.Equal(expectedPerHour, machine.GetProperty("costPerHour").GetDecimal());
        Assert.Equal(expectedPerHour, costs.GetProperty("costPerHour").GetDecimal());
        Assert.Equal("USD", costs.GetProperty("currency").GetString());
        var hours = machine.GetProperty("runningHours").GetDouble();
        Assert.InRange(hours, 1.5 / 3600, 60.0 / 3600);
        Assert.Equal(Math.Round(expectedPerHour * (decimal)hours, 6), machine.GetProperty("accruedCost").GetDecimal(), 5);
        Assert.Equal(machine.GetProperty("accruedCost").GetDecimal(), costs.GetProperty("accruedCost").GetDecimal());

        await tenant.ActAsync(HttpMethod.Delete, $"/api/v1/machines/{id}");
        await tenant.WaitForMachineAsync(id, "destroyed");
        await Eventually.TrueAsync(async () =>
            (await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/costs?from={Iso(since)}")).GetProperty("costPerHour").GetDecimal() == 0,
            Patience, "a destroyed machine costs nothing per hour");
    }

    [Fact]
    public async Task The_gateway_sends_a_machines_metrics_and_health_to_telemetry_and_another_tenant_finds_neither()
    {
        using var admin = await stack.AdminAsync();
        var (_, owner) = await admin.CreateTenantWithAdminAsync();
        var (_, stranger) = await admin.CreateTenantWithAdminAsync();
        var id = await owner.CreateMachineAsync(new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64 });
        await owner.WaitForMachineAsync(id, "running");

        Assert.Equal("running", (await owner.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}")).GetProperty("state").GetString());
        await Eventually.TrueAsync(async () => (await owner.GetAsync($"/api/v1/machines/{id}/metrics")).StatusCode == HttpStatusCode.OK, Patience, "telemetry knows the machine");
        var series = await owner.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/metrics");
        Assert.Equal(id, series.GetProperty("id").GetGuid());
        Assert.Equal("unknown", (await owner.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/health")).GetProperty("state").GetString());

        await Problems.AssertAsync(await stranger.GetAsync($"/api/v1/machines/{id}/metrics"), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
        await Problems.AssertAsync(await stranger.GetAsync($"/api/v1/machines/{id}/health"), HttpStatusCode.NotFound, "urn:platform:problem:not-found");
        Assert.DoesNotContain(id.ToString(), await stranger.GetStringAsync("/api/v1/costs"), StringComparison.Ordinal);
        await Problems.AssertAsync(await owner.GetAsync($"/api/v1/hosts/{Guid.NewGuid()}/metrics"), HttpStatusCode.Forbidden, "urn:platform:problem:forbidden");
    }

    [Theory]
    [InlineData("from=yesterday", "from")]
    [InlineData("to=2026-13-45T00:00:00Z", "to")]
    [InlineData("from=2026-11-22T05:00:00Z&to=2026-11-22T04:00:00Z", "from")]
    [InlineData("step=0s", "step")]
    [InlineData("step=fortnight", "step")]
    [InlineData("from=2026-01-01T00:00:00Z&to=2026-11-01T00:00:00Z&step=1s", "step")]
    public async Task A_bad_from_to_or_step_is_a_422_naming_the_field(string query, string field)
    {
        using var admin = await stack.AdminAsync();
        var (_, tenant) = await admin.CreateTenantWithAdminAsync();
        var id = await tenant.CreateMachineAsync(new { kind = "sandbox", driver = "simulated", vcpus = 1, memoryMiB = 64 });
        await Eventually.TrueAsync(async () => (await tenant.GetAsync($"/api/v1/machines/{id}/metrics")).StatusCode == HttpStatusCode.OK, Patience, "telemetry knows the machine");

        foreach (var (caller, path) in new[] { (tenant, $"/api/v1/machines/{id}/metrics?{query}"), (admin, $"/api/v1/hosts/{Guid.NewGuid()}/metrics?{query}") })
        {
            var problem = await Problems.AssertAsync(await caller.GetAsync(path), HttpStatusCode.UnprocessableEntity, "urn:platform:problem:validation-failed");
            Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), $"the problem names {field}: {problem}");
        }
    }

    /// <summary>The example in docs/api/metrics.md has the shape of the answer, down to the first element of its list.</summary>
    internal static void AssertDocumented(string example, JsonElement actual, string list)
    {
        var documented = DocumentationTests.Example(Path.Combine("api", "metrics.md"), example);
        DocumentationTests.AssertSameShape(documented, actual);
        DocumentationTests.AssertSameShape(documented.GetProperty(list)[0], actual.GetProperty(list)[0], $"$.{list}[0]");
    }

    internal static string Iso(DateTimeOffset time) => Uri.EscapeDataString(time.ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture));

    private static async Task<JsonElement[]> PointsAsync(HttpClient tenant, Guid id, DateTimeOffset from, string step) =>
        (await SeriesAsync(tenant, id, from, DateTimeOffset.UtcNow, step)).GetProperty("points").EnumerateArray().ToArray();

    private static Task<JsonElement> SeriesAsync(HttpClient tenant, Guid id, DateTimeOffset from, DateTimeOffset to, string step) =>
        tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/metrics?from={Iso(from)}&to={Iso(to)}&step={step}");

    private static DateTimeOffset Minute(DateTimeOffset time) => new(time.Ticks - time.Ticks % TimeSpan.TicksPerMinute, time.Offset);

    private static int Samples(JsonElement series) => series.GetProperty("points").EnumerateArray().Sum(p => p.GetProperty("samples").GetInt32());

    /// <summary>Raw host samples written straight into telemetry's table, as if an agent had reported them long ago.</summary>
    private async Task InsertRawAsync(Guid host, params (DateTimeOffset At, double CpuCores, long MemoryBytes)[] samples)
    {
        foreach (var (at, cpu, memory) in samples)
        {
            await using var command = stack.Environment.Database.DataSource.CreateCommand("""
                INSERT INTO telemetry.metric_samples (subject_id, subject, tenant_id, host_id, resolution, bucket, samples, seconds, cpu_core_seconds, cpu_cores_max,
                    memory_bytes_sum, memory_bytes_max, memory_limit_bytes, processes_max, disk_bytes_max, network_rx_bytes, network_tx_bytes)
                VALUES ($1, 'host', NULL, $1, 0, $2, 1, 10, $3 * 10, $3, $4, $4, 1000, 0, 0, 0, 0)
                """);
            command.Parameters.Add(new NpgsqlParameter { Value = host });
            command.Parameters.Add(new NpgsqlParameter { Value = at });
            command.Parameters.Add(new NpgsqlParameter { Value = cpu });
            command.Parameters.Add(new NpgsqlParameter { Value = memory });
            await command.ExecuteNonQueryAsync();
        }
    }

    private Task<long> CountAsync(Guid subject, int resolution) =>
        stack.Environment.Database.ScalarAsync<long>($"SELECT count(*) FROM telemetry.metric_samples WHERE subject_id = '{subject}' AND resolution = {resolution}");
}
