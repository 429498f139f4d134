using Amazon.Runtime;
using Platform.Contracts.Provisioning;
using Platform.HostAgent.Drivers;
using Platform.Testing.Clouds;

namespace Platform.Provisioning.Tests.Clouds;

/// <summary>The <c>aws</c> driver against a local EC2 that checks every signature and answers as EC2 documents.</summary>
public sealed class AwsDriverTests : IAsyncLifetime
{
    private readonly RecordedLogs _logs = new();
    private Ec2Fake _ec2 = null!;

    public async Task InitializeAsync() => _ec2 = await Ec2Fake.StartAsync();

    public async Task DisposeAsync() => await _ec2.DisposeAsync();

    [Fact]
    public async Task An_aws_machine_is_created_tagged_runs_stops_starts_again_and_is_destroyed()
    {
        var driver = Driver();
        var launch = Launch(driver);

        var machine = await driver.LaunchAsync(launch, CancellationToken.None);

        var instance = Assert.Single(_ec2.Instances);
        Assert.Equal(("running", "t3.micro", "ami-0a1b2c3d4e5f60001", "us-east-1"), (instance.State, instance.InstanceType, instance.ImageId, instance.Region));
        Assert.Equal(launch.MachineId.ToString(), instance.Tags["platform:machine-id"]);
        Assert.Equal(launch.TenantId.ToString(), instance.Tags["platform:tenant-id"]);
        Assert.Equal("web-1", instance.Tags["Name"]);
        Assert.StartsWith("10.0.", machine.Network!.Address, StringComparison.Ordinal);
        Assert.StartsWith("203.0.113.", machine.Network.PublicAddress, StringComparison.Ordinal);
        Assert.Equal("aws:us-east-1", machine.Network.Namespace);

        await machine.StopAsync(CancellationToken.None);
        await machine.DisposeAsync();
        Assert.Equal("stopped", Assert.Single(_ec2.Instances).State);
        Assert.Equal(new MachineExit(0, "stopped"), await machine.Exited);

        var again = await driver.LaunchAsync(launch with { OperationId = Guid.NewGuid() }, CancellationToken.None);
        Assert.Equal(("running", instance.Id), (Assert.Single(_ec2.Instances).State, _ec2.Instances[0].Id));
        Assert.Single(_ec2.Actions, a => a == "RunInstances");
        Assert.Contains("StartInstances", _ec2.Actions);
        await again.DisposeAsync();

        await driver.CleanUpAsync(launch.MachineId, CancellationToken.None);
        Assert.Equal("terminated", Assert.Single(_ec2.Instances).State);
        await driver.CleanUpAsync(launch.MachineId, CancellationToken.None);
    }

    [Fact]
    public async Task A_launch_ec2_refuses_for_capacity_fails_with_the_providers_message_and_leaves_no_instance()
    {
        var driver = Driver();
        _ec2.RefuseNextRunForCapacity();

        var failed = await Assert.ThrowsAsync<LaunchFailedException>(() => driver.LaunchAsync(Launch(driver), CancellationToken.None));

        Assert.Contains("InsufficientInstanceCapacity: We currently do not have sufficient t3.micro capacity", failed.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(_ec2.Instances, i => i.State != "terminated");
    }

    [Fact]
    public async Task An_instance_that_does_not_run_within_the_launch_timeout_is_terminated_and_the_launch_fails()
    {
        await _ec2.DisposeAsync();
        _ec2 = await Ec2Fake.StartAsync(() => new Ec2Fake { PollsPerTransition = 1_000_000 });
        // Long enough for the instance to be created on a busy host (it failed at 3 s with the suite's assemblies side by side):
        // the timeout must catch the instance that never runs, not the request that creates it.
        var driver = CloudDrivers.Aws(Options(launchTimeout: TimeSpan.FromSeconds(10)), new BasicAWSCredentials(_ec2.AccessKeyId, _ec2.SecretAccessKey), null, _logs.Factory);

        var failed = await Assert.ThrowsAsync<LaunchFailedException>(() => driver.LaunchAsync(Launch(driver), CancellationToken.None));

        Assert.Equal("the aws instance did not run within 00:00:10", failed.Message);
        Assert.Equal("shutting-down", Assert.Single(_ec2.Instances).State);
        Assert.Contains("TerminateInstances", _ec2.Actions);
    }

    [Fact]
    public async Task Throttled_requests_are_retried_with_backoff_until_ec2_answers()
    {
        var driver = Driver();
        _ec2.ThrottleNext(3);

        await using var machine = await driver.LaunchAsync(Launch(driver), CancellationToken.None);

        Assert.Equal("running", Assert.Single(_ec2.Instances).State);
        Assert.Equal(["DescribeInstances", "DescribeInstances", "DescribeInstances", "DescribeInstances"], _ec2.Actions.Take(4));
    }

    [Fact]
    public async Task Throttling_that_outlasts_the_retries_fails_the_launch_with_the_providers_message()
    {
        var driver = Driver(attempts: 3);
        _ec2.ThrottleNext(100);

        var failed = await Assert.ThrowsAsync<LaunchFailedException>(() => driver.LaunchAsync(Launch(driver), CancellationToken.None));

        Assert.Equal("aws: RequestLimitExceeded: Request limit exceeded.", failed.Message);
        Assert.Equal(3, _ec2.Actions.Count);
    }

    [Fact]
    public async Task A_wrong_secret_is_refused_as_a_signature_mismatch_and_an_unknown_key_as_an_auth_failure()
    {
        var wrongSecret = Driver(new BasicAWSCredentials(_ec2.AccessKeyId, "not-" + _ec2.SecretAccessKey));
        var unknownKey = Driver(new BasicAWSCredentials("AKIAUNKNOWN000000000", _ec2.SecretAccessKey));

        var mismatch = await Assert.ThrowsAsync<LaunchFailedException>(() => wrongSecret.LaunchAsync(Launch(wrongSecret), CancellationToken.None));
        var unknown = await Assert.ThrowsAsync<LaunchFailedException>(() => unknownKey.LaunchAsync(Launch(unknownKey), CancellationToken.None));

        Assert.StartsWith("aws: SignatureDoesNotMatch: The request signature we calculated does not match", mismatch.Message, StringComparison.Ordinal);
        Assert.Equal("aws: AuthFailure: AWS was not able to validate the provided access credentials", unknown.Message);
        Assert.Empty(_ec2.Instances);
    }

    [Fact]
    public async Task A_temporary_session_token_is_signed_with_the_request()
    {
        var driver = Driver(new SessionAWSCredentials(_ec2.AccessKeyId, _ec2.SecretAccessKey, "session-token-" + Guid.NewGuid()));

        await using var machine = await driver.LaunchAsync(Launch(driver), CancellationToken.None);

        Assert.Equal("running", Assert.Single(_ec2.Instances).State);
    }

    [Fact]
    public async Task An_instance_stopped_in_the_console_ends_the_machine_and_a_deleted_one_fails_it()
    {
        var driver = Driver();
        var first = await driver.LaunchAsync(Launch(driver), CancellationToken.None);
        var second = await driver.LaunchAsync(Launch(driver, region: "eu-west-1"), CancellationToken.None);

        _ec2.StopOutside(_ec2.Instances.Single(i => i.Region == "us-east-1").Id);
        var stopped = await first.Exited.WaitAsync(TimeSpan.FromSeconds(10));
        await driver.CleanUpAsync(Guid.Parse(_ec2.Instances.Single(i => i.Region == "eu-west-1").Tags["platform:machine-id"]), CancellationToken.None);
        var deleted = await second.Exited.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(0, stopped.ExitCode);
        Assert.Contains("was stopped outside Platform", stopped.Reason, StringComparison.Ordinal);
        Assert.Null(deleted.ExitCode);
        Assert.Contains("was deleted outside Platform", deleted.Reason, StringComparison.Ordinal);
        await first.DisposeAsync();
        await second.DisposeAsync();
    }

    [Fact]
    public async Task The_driver_offers_its_regions_types_and_images_and_without_credentials_says_why_it_is_unavailable()
    {
        var driver = Driver();
        var without = CloudDrivers.Aws(Options(), null, "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a shared profile", _logs.Factory);

        Assert.Equal(["us-east-1", "eu-west-1"], driver.Capacity.Regions);
        Assert.Equal([new InstanceType("t3.large", 2, 8192), new InstanceType("t3.micro", 2, 1024)], driver.Capacity.InstanceTypes);
        Assert.Equal(("cloud", 2, 8192, null), (driver.Capacity.Kind, driver.Capacity.MaxVcpus, driver.Capacity.MaxMemoryMiB, driver.Capacity.Unavailable));
        Assert.Equal(("debian-12", "cloud"), (Assert.Single(driver.Templates).Name, driver.Templates[0].Kind));
        Assert.StartsWith("no AWS credentials found", without.Capacity.Unavailable, StringComparison.Ordinal);
        var refused = await Assert.ThrowsAsync<LaunchFailedException>(() => without.LaunchAsync(Launch(without), CancellationToken.None));
        Assert.Contains("no AWS credentials found", refused.Message, StringComparison.Ordinal);
        Assert.Empty(_ec2.Actions);
    }

    [Fact]
    public async Task Credentials_never_appear_in_the_logs_or_in_what_the_driver_reports()
    {
        var driver = Driver();
        var launch = Launch(driver);
        var machine = await driver.LaunchAsync(launch, CancellationToken.None);
        await machine.StopAsync(CancellationToken.None);
        await machine.DisposeAsync();
        await driver.CleanUpAsync(launch.MachineId, CancellationToken.None);
        _ec2.RefuseNextRunForCapacity();
        var failed = await Assert.ThrowsAsync<LaunchFailedException>(() => driver.LaunchAsync(Launch(driver), CancellationToken.None));
        var wrong = Driver(new BasicAWSCredentials(_ec2.AccessKeyId, "wrong-secret-" + _ec2.SecretAccessKey));
        var mismatch = await Assert.ThrowsAsync<LaunchFailedException>(() => wrong.LaunchAsync(Launch(wrong), CancellationToken.None));

        Assert.NotEmpty(_logs.Lines);
        foreach (var said in _logs.Lines.Append(failed.Message).Append(mismatch.Message).Append(failed.ToString()).Append(mismatch.ToString()))
        {
            Assert.DoesNotContain(_ec2.SecretAccessKey, said, StringComparison.Ordinal);
            Assert.DoesNotContain(_ec2.AccessKeyId, said, StringComparison.Ordinal);
        }
    }

    private CloudDriver Driver(AWSCredentials? credentials = null, int attempts = 6) =>
        CloudDrivers.Aws(Options(attempts), credentials ?? new BasicAWSCredentials(_ec2.AccessKeyId, _ec2.SecretAccessKey), null, _logs.Factory);

    private AwsOptions Options(int attempts = 6, TimeSpan? launchTimeout = null) => new()
    {
        Regions = ["us-east-1", "eu-west-1"],
        InstanceTypes = new() { ["t3.micro"] = new() { Vcpus = 2, MemoryMiB = 1024 }, ["t3.large"] = new() { Vcpus = 2, MemoryMiB = 8192 } },
        Images = new() { ["debian-12"] = new() { ["us-east-1"] = "ami-0a1b2c3d4e5f60001", ["eu-west-1"] = "ami-0a1b2c3d4e5f60002" } },
        Endpoint = _ec2?.Endpoint.ToString(),
        PollInterval = TimeSpan.FromMilliseconds(20),
        LaunchTimeout = launchTimeout ?? TimeSpan.FromSeconds(20),
        RetryAttempts = attempts,
        RetryBaseDelay = TimeSpan.FromMilliseconds(10),
    };

    private static LaunchMachine Launch(CloudDriver driver, string region = "us-east-1") => new(
        Guid.CreateVersion7(), Guid.CreateVersion7(), Guid.CreateVersion7(), "web-1", "aws", new TemplateRef("debian-12", driver.Templates[0].Version),
        new MachineShape(1, 512, 0), null, "auto", null, region, "t3.micro");
}
