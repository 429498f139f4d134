using System.Net;
using System.Net.Http.Json;
using System.Text;
using Platform.Testing;

namespace Platform.Services.Tests;

[Collection(StackCollection.Name)]
public sealed class GatewayLimitsTests(PlatformStack stack)
{
    [Fact]
    public async Task A_tenant_that_spends_its_request_budget_gets_429_with_retry_after_while_another_tenant_is_unaffected()
    {
        using var admin = await stack.AdminAsync();
        var (tenantA, adminOfA) = await admin.CreateTenantWithAdminAsync();
        var (tenantB, adminOfB) = await admin.CreateTenantWithAdminAsync();
        await using var strict = GatewayTests.StartGateway(stack.Addresses,
            ("Platform__Gateway__RateLimit__RequestsPerSecond", "1"),
            ("Platform__Gateway__RateLimit__Burst", "5"));
        var address = await strict.WaitUntilReadyAsync();
        using var a = PlatformApi.WithToken(new HttpClient { BaseAddress = address }, adminOfA.DefaultRequestHeaders.Authorization!.Parameter!);
        using var b = PlatformApi.WithToken(new HttpClient { BaseAddress = address }, adminOfB.DefaultRequestHeaders.Authorization!.Parameter!);

        var burst = new List<HttpResponseMessage>();
        for (var i = 0; i < 8; i++)
        {
            burst.Add(await a.GetAsync($"/api/v1/tenants/{tenantA}"));
        }

        Assert.True(burst.Take(5).All(r => r.StatusCode == HttpStatusCode.OK), "the burst allowance is served");
        var limited = burst.Last();
        await Problems.AssertAsync(limited, HttpStatusCode.TooManyRequests, "urn:platform:problem:rate-limited");
        Assert.True(int.Parse(limited.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture) >= 1);
        Assert.Equal(HttpStatusCode.OK, (await b.GetAsync($"/api/v1/tenants/{tenantB}")).StatusCode);
    }

    [Fact]
    public async Task An_oversize_body_is_refused_with_413_before_it_reaches_a_service()
    {
        using var admin = await stack.AdminAsync();
        var tenantsBefore = await stack.Environment.Database.ScalarAsync<long>("SELECT count(*) FROM tenancy.tenants");
        var huge = "{\"slug\":\"huge\",\"name\":\"" + new string('x', 2 * 1024 * 1024) + "\"}";

        // As a client should send a large body: it waits for the go-ahead, so the refusal is read, not cut off mid-write.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/tenants") { Content = new StringContent(huge, Encoding.UTF8, "application/json") };
        request.Headers.ExpectContinue = true;
        var response = await admin.SendAsync(request);

        await Problems.AssertAsync(response, HttpStatusCode.RequestEntityTooLarge, "urn:platform:problem:payload-too-large");
        Assert.Equal(tenantsBefore, await stack.Environment.Database.ScalarAsync<long>("SELECT count(*) FROM tenancy.tenants"));
    }

    [Fact]
    public async Task A_correlation_id_goes_in_and_comes_out_and_one_is_made_when_none_is_sent()
    {
        using var client = await stack.AnonymousAsync();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/v1/tenancy/info");
        request.Headers.Add("X-Correlation-Id", "order-4711");

        var echoed = await client.SendAsync(request);
        var made = await client.GetAsync("/api/v1/tenancy/info");

        Assert.Equal("order-4711", echoed.Headers.GetValues("X-Correlation-Id").Single());
        Assert.Matches("^[0-9a-f]{32}$", made.Headers.GetValues("X-Correlation-Id").Single());
    }
}
