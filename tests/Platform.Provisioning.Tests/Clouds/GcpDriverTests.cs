using System.Security.Cryptography;
using Platform.Contracts.Provisioning;
using Platform.HostAgent.Drivers;
using Platform.Testing;
using Platform.Testing.Clouds;

namespace Platform.Provisioning.Tests.Clouds;

/// <summary>The <c>gcp</c> driver against a local Compute Engine and OAuth2 token endpoint that check the service account's JWT and every bearer token.</summary>
public sealed class GcpDriverTests : IAsyncLifetime
{
    private readonly RecordedLogs _logs = new();
    private readonly string _keyFile = Path.Combine(Path.GetTempPath(), $"platform-gcp-key-{Guid.NewGuid():N}.json");
    private ComputeEngineFake _gce = null!;

    public async Task InitializeAsync()
    {
        _gce = await ComputeEngineFake.StartAsync();
        await File.WriteAllTextAsync(_keyFile, _gce.KeyJson());
    }

    public async Task DisposeAsync()
    {
        await _gce.DisposeAsync();
        File.Delete(_keyFile);
    }

    [Fact]
    public async Task A_gcp_machine_is_created_labelled_runs_stops_starts_again_and_is_destroyed_on_one_access_token()
    {
        var driver = Driver();
        var launch = Launch(driver);

        var machine = await driver.LaunchAsync(launch, CancellationToken.None);

        var instance = Assert.Single(_gce.Instances);
        Assert.Equal(($"pm-{launch.MachineId:N}", "RUNNING", "e2-small", "us-central1-a"), (instance.Name, instance.Status, instance.MachineType, instance.Zone));
        Assert.Equal(launch.MachineId.ToString(), instance.Labels["platform-machine-id"]);
        Assert.Equal(launch.TenantId.ToString(), instance.Labels["platform-tenant-id"]);
        Assert.StartsWith("10.128.0.", machine.Network!.Address, StringComparison.Ordinal);
        Assert.StartsWith("34.42.0.", machine.Network.PublicAddress, StringComparison.Ordinal);

        await machine.StopAsync(CancellationToken.None);
        await machine.DisposeAsync();
        Assert.Equal("TERMINATED", Assert.Single(_gce.Instances).Status);

        await using (var again = await driver.LaunchAsync(launch with { OperationId = Guid.NewGuid() }, CancellationToken.None))
        {
            Assert.Equal("RUNNING", Assert.Single(_gce.Instances).Status);
            Assert.Single(_gce.Requests, r => r.EndsWith("/instances", StringComparison.Ordinal));
            Assert.Contains(_gce.Requests, r => r.EndsWith("/start", StringComparison.Ordinal));
        }

        await driver.CleanUpAsync(launch.MachineId, CancellationToken.None);
        Assert.Empty(_gce.Instances);
        await driver.CleanUpAsync(launch.MachineId, CancellationToken.None);
        Assert.Contains(_gce.Requests, r => r.StartsWith("GET /compute/v1/projects/platform-test/zones/us-central1-a/operations/", StringComparison.Ordinal));
        Assert.Equal(1, _gce.TokensIssued);
    }

    [Fact]
    public async Task An_exhausted_zone_fails_the_launch_with_the_providers_message_and_leaves_no_instance()
    {
        var driver = Driver();
        _gce.ExhaustNextInsert();

        var failed = await Assert.ThrowsAsync<LaunchFailedException>(() => driver.LaunchAsync(Launch(driver), CancellationToken.None));

        Assert.Equal("gcp: ZONE_RESOURCE_POOL_EXHAUSTED: The zone 'projects/platform-test/zones/us-central1-a' does not have enough resources available to fulfill the request.  Try a different zone, or try again later.",
            failed.Message);
        Assert.Empty(_gce.Instances);
    }

    [Fact]
    public async Task Requests_answered_429_rate_limit_exceeded_are_retried_until_they_pass()
    {
        var driver = Driver();
        _gce.ThrottleNext(3);

        await using var machine = await driver.LaunchAsync(Launch(driver), CancellationToken.None);

        Assert.Equal("RUNNING", Assert.Single(_gce.Instances).Status);
        Assert.Equal(["POST /token", "GET", "GET", "GET", "GET"], _gce.Requests.Take(5).Select(r => r.StartsWith("GET", StringComparison.Ordinal) ? "GET" : r));
    }

    [Fact]
    public async Task An_assertion_signed_with_another_key_is_refused_by_the_token_endpoint_and_nothing_is_made()
    {
        using var stranger = RSA.Create(2048);
        await File.WriteAllTextAsync(_keyFile, _gce.KeyJson(stranger));
        var driver = Driver();

        var failed = await Assert.ThrowsAsync<LaunchFailedException>(() => driver.LaunchAsync(Launch(driver), CancellationToken.None));

        Assert.Equal("gcp: invalid_grant: Invalid JWT Signature.", failed.Message);
        Assert.Equal(0, _gce.TokensIssued);
        Assert.Empty(_gce.Instances);
    }

    [Fact]
    public async Task An_access_token_is_reused_until_shortly_before_it_expires_and_then_replaced()
    {
        await _gce.DisposeAsync();
        // Google.Apis.Auth refreshes a token from 225 s before it expires: a 250 s token is fresh for 25 s, long enough for
        // a launch on a loaded host, and then stale (refreshed while it may still be used).
        _gce = await ComputeEngineFake.StartAsync(() => new ComputeEngineFake { TokenLifetime = TimeSpan.FromSeconds(250) });
        await File.WriteAllTextAsync(_keyFile, _gce.KeyJson());
        var driver = Driver();
        var launch = Launch(driver);
        var issued = DateTime.UtcNow;

        await using (await driver.LaunchAsync(launch, CancellationToken.None))
        {
            Assert.Equal(1, _gce.TokensIssued);
        }

        await Task.Delay(issued + TimeSpan.FromSeconds(28) - DateTime.UtcNow);
        await driver.CleanUpAsync(launch.MachineId, CancellationToken.None);

        await Eventually.TrueAsync(() => _gce.TokensIssued == 2, TimeSpan.FromSeconds(10), "the stale token is replaced");
    }

    [Fact]
    public async Task Without_a_service_account_key_the_driver_is_unavailable_and_says_where_it_looked()
    {
        var driver = CloudDrivers.Gcp(Options("/nonexistent/key.json"), _logs.Factory);

        Assert.Equal("no GCP service account key at /nonexistent/key.json", driver.Capacity.Unavailable);
        var refused = await Assert.ThrowsAsync<LaunchFailedException>(() => driver.LaunchAsync(Launch(driver), CancellationToken.None));
        Assert.Contains("no GCP service account key", refused.Message, StringComparison.Ordinal);
        Assert.Empty(_gce.Requests);
    }

    [Fact]
    public async Task The_private_key_and_the_access_tokens_never_appear_in_the_logs_or_in_failures()
    {
        var driver = Driver();
        var launch = Launch(driver);
        var machine = await driver.LaunchAsync(launch, CancellationToken.None);
        await machine.StopAsync(CancellationToken.None);
        await machine.DisposeAsync();
        await driver.CleanUpAsync(launch.MachineId, CancellationToken.None);
        _gce.ExhaustNextInsert();
        var failed = await Assert.ThrowsAsync<LaunchFailedException>(() => driver.LaunchAsync(Launch(driver), CancellationToken.None));

        var keyBody = _gce.PrivateKeyPem.Split('\n')[1];
        foreach (var said in _logs.Lines.Append(failed.ToString()))
        {
            Assert.DoesNotContain(keyBody, said, StringComparison.Ordinal);
            Assert.DoesNotContain("ya29.", said, StringComparison.Ordinal);
            Assert.DoesNotContain("eyJ", said, StringComparison.Ordinal);
        }
    }

    private CloudDriver Driver() => CloudDrivers.Gcp(Options(_keyFile), _logs.Factory);

    private GcpOptions Options(string keyFile) => new()
    {
        Zones = ["us-central1-a", "europe-west1-b"],
        MachineTypes = new() { ["e2-small"] = new() { Vcpus = 2, MemoryMiB = 2048 }, ["e2-standard-4"] = new() { Vcpus = 4, MemoryMiB = 16384 } },
        Images = new() { ["debian-12-gcp"] = new() { ["us-central1-a"] = "projects/debian-cloud/global/images/family/debian-12", ["europe-west1-b"] = "projects/debian-cloud/global/images/family/debian-12" } },
        CredentialsFile = keyFile,
        ComputeEndpoint = _gce.ComputeEndpoint.ToString(),
        PollInterval = TimeSpan.FromMilliseconds(20),
        LaunchTimeout = TimeSpan.FromSeconds(20),
        RetryBaseDelay = TimeSpan.FromMilliseconds(10),
    };

    private static LaunchMachine Launch(CloudDriver driver) => new(
        Guid.CreateVersion7(), Guid.CreateVersion7(), Guid.CreateVersion7(), "web-1", "gcp", new TemplateRef("debian-12-gcp", driver.Templates[0].Version),
        new MachineShape(1, 512, 0), null, "auto", null, "us-central1-a", "e2-small");
}
