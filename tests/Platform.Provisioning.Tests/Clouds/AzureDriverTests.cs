using System.Collections.Concurrent;
using System.Diagnostics.Tracing;
using Azure.Core.Diagnostics;
using Platform.Contracts.Provisioning;
using Platform.HostAgent.Drivers;
using Platform.Testing.Clouds;

namespace Platform.Provisioning.Tests.Clouds;

/// <summary>
/// The <c>azure</c> driver against a local Resource Manager and Entra token endpoint over https: the SDK signs in as
/// the fake's service principal, and follows every create, start, deallocate and delete through ARM's
/// asynchronous-operation protocol.
/// </summary>
public sealed class AzureDriverTests : IAsyncLifetime
{
    private const string SshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnlyNotARealKey0000000000 platform@test";
    private readonly RecordedLogs _logs = new();
    private ArmFake _arm = null!;

    public async Task InitializeAsync() => _arm = await ArmFake.StartAsync();

    public async Task DisposeAsync() => await _arm.DisposeAsync();

    [Fact]
    public async Task An_azure_machine_is_created_tagged_runs_is_deallocated_starts_again_and_is_destroyed_on_one_token()
    {
        var driver = Driver();
        var launch = Launch(driver);

        var machine = await driver.LaunchAsync(launch, CancellationToken.None);

        var vm = Assert.Single(_arm.Vms);
        Assert.Equal(($"pm-{launch.MachineId:N}", "westeurope", "Standard_B1s", "Succeeded", "running"), (vm.Name, vm.Location, vm.VmSize, vm.ProvisioningState, vm.PowerState));
        Assert.Equal(launch.MachineId.ToString(), vm.Tags["platform-machine-id"]);
        Assert.Equal(launch.TenantId.ToString(), vm.Tags["platform-tenant-id"]);
        Assert.Equal(("web-1", "platform"), (vm.Properties["osProfile"]!["computerName"]!.GetValue<string>(), vm.Properties["osProfile"]!["adminUsername"]!.GetValue<string>()));
        Assert.Equal(SshKey, vm.Properties["osProfile"]!["linuxConfiguration"]!["ssh"]!["publicKeys"]![0]!["keyData"]!.GetValue<string>());
        Assert.Equal("Delete", vm.Properties["storageProfile"]!["osDisk"]!["deleteOption"]!.GetValue<string>());
        Assert.Equal("Delete", vm.Properties["networkProfile"]!["networkInterfaceConfigurations"]![0]!["properties"]!["deleteOption"]!.GetValue<string>());
        Assert.Contains(_arm.Requests, r => r.StartsWith("GET /subscriptions/" + _arm.SubscriptionId + "/providers/Microsoft.Compute/locations/westeurope/operations/", StringComparison.OrdinalIgnoreCase));

        await machine.StopAsync(CancellationToken.None);
        await machine.DisposeAsync();
        Assert.Equal(("Succeeded", "deallocated"), (Assert.Single(_arm.Vms).ProvisioningState, _arm.Vms[0].PowerState));
        Assert.Equal(new MachineExit(0, "stopped"), await machine.Exited);

        await using (var again = await driver.LaunchAsync(launch with { OperationId = Guid.NewGuid() }, CancellationToken.None))
        {
            Assert.Equal("running", Assert.Single(_arm.Vms).PowerState);
            Assert.Single(_arm.Requests, r => r.StartsWith("PUT ", StringComparison.Ordinal));
            Assert.Contains(_arm.Requests, r => r.EndsWith("/start", StringComparison.Ordinal));
        }

        await driver.CleanUpAsync(launch.MachineId, CancellationToken.None);
        Assert.Empty(_arm.Vms);
        await driver.CleanUpAsync(launch.MachineId, CancellationToken.None);
        Assert.Equal(1, _arm.TokensIssued);
    }

    [Fact]
    public async Task An_allocation_failure_fails_the_launch_with_azures_message_and_deletes_the_failed_vm()
    {
        var driver = Driver();
        _arm.FailNextCreateForAllocation();

        var failed = await Assert.ThrowsAsync<LaunchFailedException>(() => driver.LaunchAsync(Launch(driver), CancellationToken.None));

        Assert.Equal("azure: AllocationFailed: Allocation failed. We do not have sufficient capacity for the requested VM size in this region. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance",
            failed.Message);
        Assert.Empty(_arm.Vms);
        Assert.Contains(_arm.Requests, r => r.StartsWith("DELETE ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_size_azure_cannot_offer_fails_the_launch_with_azures_message_and_makes_nothing()
    {
        var driver = Driver();
        _arm.RefuseNextCreateForSku();

        var failed = await Assert.ThrowsAsync<LaunchFailedException>(() => driver.LaunchAsync(Launch(driver), CancellationToken.None));

        Assert.StartsWith("azure: SkuNotAvailable: The requested VM size for resource 'Following SKUs have failed for Capacity Restrictions: Standard_B1s' is currently not available in location 'westeurope'.",
            failed.Message, StringComparison.Ordinal);
        Assert.Empty(_arm.Vms);
    }

    [Fact]
    public async Task Requests_throttled_with_retry_after_are_repeated_until_they_pass()
    {
        var driver = Driver();
        _arm.ThrottleNext(2);

        await using var machine = await driver.LaunchAsync(Launch(driver), CancellationToken.None);

        Assert.Equal("running", Assert.Single(_arm.Vms).PowerState);
        // The first lookup was throttled twice and asked again; the driver's own backoff is 10 ms, so waiting a
        // second each time shows Azure's Retry-After was what counted.
        var first = _arm.Requests.Select((request, i) => (request, at: _arm.RequestTimes[i])).Where(r => r.request.Contains("/subscriptions/", StringComparison.Ordinal)).Take(3).ToList();
        Assert.Single(first.Select(r => r.request).Distinct());
        Assert.True(first[2].at - first[0].at >= TimeSpan.FromSeconds(2 * _arm.ThrottleRetryAfterSeconds) - TimeSpan.FromMilliseconds(50), $"the retries waited {first[2].at - first[0].at}");
    }

    [Fact]
    public async Task Throttling_that_outlasts_the_retries_fails_the_launch_with_azures_message()
    {
        var driver = Driver(attempts: 2);
        _arm.ThrottleNext(100);

        var failed = await Assert.ThrowsAsync<LaunchFailedException>(() => driver.LaunchAsync(Launch(driver), CancellationToken.None));

        Assert.StartsWith($"azure: SubscriptionRequestsThrottled: Number of 'read' requests for subscription '{_arm.SubscriptionId}' actor '{_arm.ClientId}' exceeded.", failed.Message, StringComparison.Ordinal);
        Assert.Equal(2, _arm.Requests.Count(r => r.StartsWith("GET /subscriptions/", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_wrong_client_secret_is_refused_by_entra_and_nothing_is_made()
    {
        var driver = Driver(secret: "not-" + _arm.ClientSecret);

        var failed = await Assert.ThrowsAsync<LaunchFailedException>(() => driver.LaunchAsync(Launch(driver), CancellationToken.None));

        Assert.StartsWith("azure: invalid_client: AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value", failed.Message, StringComparison.Ordinal);
        Assert.Equal(0, _arm.TokensIssued);
        Assert.DoesNotContain(_arm.Requests, r => r.StartsWith("PUT ", StringComparison.Ordinal) || r.StartsWith("GET /subscriptions/", StringComparison.Ordinal));
        Assert.Empty(_arm.Vms);
    }

    [Fact]
    public async Task A_token_resource_manager_no_longer_accepts_fails_the_launch_with_its_401()
    {
        var driver = Driver();
        await using (await driver.LaunchAsync(Launch(driver), CancellationToken.None))
        {
        }

        _arm.RevokeTokens();
        var failed = await Assert.ThrowsAsync<LaunchFailedException>(() => driver.LaunchAsync(Launch(driver), CancellationToken.None));

        Assert.Equal("azure: InvalidAuthenticationToken: The access token is invalid.", failed.Message);
        Assert.Single(_arm.Vms);
    }

    [Fact]
    public async Task A_vm_deallocated_in_the_portal_ends_the_machine_and_a_deleted_one_fails_it()
    {
        var driver = Driver();
        var (firstLaunch, secondLaunch) = (Launch(driver), Launch(driver, location: "northeurope"));
        var first = await driver.LaunchAsync(firstLaunch, CancellationToken.None);
        var second = await driver.LaunchAsync(secondLaunch, CancellationToken.None);

        _arm.DeallocateOutside($"pm-{firstLaunch.MachineId:N}");
        var stopped = await first.Exited.WaitAsync(TimeSpan.FromSeconds(10));
        _arm.DeleteOutside($"pm-{secondLaunch.MachineId:N}");
        var deleted = await second.Exited.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(0, stopped.ExitCode);
        Assert.Contains("was stopped outside Platform", stopped.Reason, StringComparison.Ordinal);
        Assert.Null(deleted.ExitCode);
        Assert.Contains("was deleted outside Platform", deleted.Reason, StringComparison.Ordinal);
        await first.DisposeAsync();
        await second.DisposeAsync();
    }

    [Fact]
    public async Task Without_credentials_or_an_ssh_key_the_driver_is_offered_unavailable_and_says_why()
    {
        var without = CloudDrivers.Azure(Options(), null, "no Azure credentials: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET", _logs.Factory);
        var keyless = CloudDrivers.Azure(Options(sshKey: null), Credential(_arm.ClientSecret), null, _logs.Factory);

        Assert.Equal(["westeurope", "northeurope"], without.Capacity.Regions);
        Assert.StartsWith("no Azure credentials", without.Capacity.Unavailable, StringComparison.Ordinal);
        Assert.Contains("SshPublicKey", keyless.Capacity.Unavailable, StringComparison.Ordinal);
        var refused = await Assert.ThrowsAsync<LaunchFailedException>(() => without.LaunchAsync(Launch(without), CancellationToken.None));
        Assert.Contains("no Azure credentials", refused.Message, StringComparison.Ordinal);
        Assert.Empty(_arm.Requests);
    }

    [Fact]
    public async Task The_secret_and_the_tokens_never_appear_in_the_logs_the_sdks_diagnostics_or_failures()
    {
        var sdk = new ConcurrentQueue<string>();
        using var listener = new AzureEventSourceListener((e, message) => sdk.Enqueue($"{e.EventSource.Name} {message} {string.Join(' ', e.Payload ?? [])}"), EventLevel.Verbose);
        var driver = Driver();
        var launch = Launch(driver);
        var machine = await driver.LaunchAsync(launch, CancellationToken.None);
        await machine.StopAsync(CancellationToken.None);
        await machine.DisposeAsync();
        await driver.CleanUpAsync(launch.MachineId, CancellationToken.None);
        _arm.FailNextCreateForAllocation();
        var failed = await Assert.ThrowsAsync<LaunchFailedException>(() => driver.LaunchAsync(Launch(driver), CancellationToken.None));
        var wrong = Driver(secret: "wrong-" + _arm.ClientSecret);
        var refused = await Assert.ThrowsAsync<LaunchFailedException>(() => wrong.LaunchAsync(Launch(wrong), CancellationToken.None));

        Assert.NotEmpty(_logs.Lines);
        Assert.NotEmpty(sdk);
        foreach (var said in _logs.Lines.Concat(sdk).Append(failed.ToString()).Append(refused.ToString()))
        {
            Assert.DoesNotContain(_arm.ClientSecret, said, StringComparison.Ordinal);
            Assert.DoesNotContain("eyJ0eXAi", said, StringComparison.Ordinal);
        }
    }

    private CloudDriver Driver(string? secret = null, int attempts = 4) =>
        CloudDrivers.Azure(Options(attempts), Credential(secret ?? _arm.ClientSecret), null, _logs.Factory);

    private Azure.Core.TokenCredential Credential(string secret) => CloudDrivers.ArmConnectionOf(Options()).ServicePrincipal(_arm.TenantId, _arm.ClientId, secret);

    private AzureOptions Options(int attempts = 4, string? sshKey = SshKey) => new()
    {
        SubscriptionId = _arm.SubscriptionId,
        ResourceGroup = _arm.ResourceGroup,
        Locations = ["westeurope", "northeurope"],
        VmSizes = new() { ["Standard_B1s"] = new() { Vcpus = 1, MemoryMiB = 1024 }, ["Standard_B2s"] = new() { Vcpus = 2, MemoryMiB = 4096 } },
        Images = new() { ["debian-12-azure"] = new() { ["westeurope"] = "Debian:debian-12:12-gen2:latest", ["northeurope"] = "Debian:debian-12:12-gen2:latest" } },
        Subnets = new(_arm.Subnets),
        SshPublicKey = sshKey,
        ArmEndpoint = _arm.Endpoint.ToString(),
        ArmAudience = _arm.Audience,
        AuthorityHost = _arm.Endpoint.ToString(),
        TrustedCertificateFile = _arm.TrustedCertificateFile,
        PollInterval = TimeSpan.FromMilliseconds(20),
        LaunchTimeout = TimeSpan.FromSeconds(20),
        RetryAttempts = attempts,
        RetryBaseDelay = TimeSpan.FromMilliseconds(10),
    };

    private static LaunchMachine Launch(CloudDriver driver, string location = "westeurope") => new(
        Guid.CreateVersion7(), Guid.CreateVersion7(), Guid.CreateVersion7(), "web-1", "azure", new TemplateRef("debian-12-azure", driver.Templates[0].Version),
        new MachineShape(1, 512, 0), null, "auto", null, location, "Standard_B1s");
}
