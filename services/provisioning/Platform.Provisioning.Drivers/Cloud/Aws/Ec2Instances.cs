using System.Collections.Concurrent;
using Amazon;
using Amazon.EC2;
using Amazon.EC2.Model;
using Amazon.Runtime;

namespace Platform.Provisioning.Drivers.Cloud.Aws;

/// <summary>
/// EC2 instances through AWSSDK.EC2, one client per region. The SDK signs (Signature Version 4) and speaks the Query
/// API; its own retries are off, so that throttling is waited out by <see cref="CloudRetry"/> as for the other clouds,
/// and every refusal becomes a <see cref="CloudException"/> with AWS's code and message.
/// </summary>
public sealed class Ec2Instances(AWSCredentials credentials, Uri? endpoint, CloudRetry retry, TimeSpan timeout) : ICloudInstances, IDisposable
{
    public const string MachineIdTag = "platform:machine-id";
    public const string TenantIdTag = "platform:tenant-id";

    /// <summary>What AWS answers when it throttles or is briefly unable to serve; the request is repeated after a backoff.</summary>
    private static readonly HashSet<string> Transient = ["RequestLimitExceeded", "Throttling", "ServiceUnavailable", "Unavailable", "InternalError"];

    private static readonly TimeSpan CleanUpTimeout = TimeSpan.FromSeconds(30);

    // Not shutting-down: an instance on its way out is not one a launch can start again.
    private static readonly List<string> LiveStates = ["pending", "running", "stopping", "stopped"];

    private readonly ConcurrentDictionary<string, AmazonEC2Client> _clients = new();

    public async Task<CloudInstance?> FindAsync(Guid machineId, string location, CancellationToken cancellationToken)
    {
        var request = new DescribeInstancesRequest
        {
            Filters = [new Filter($"tag:{MachineIdTag}", [machineId.ToString()]), new Filter("instance-state-name", LiveStates)],
        };
        var answer = await SendAsync(location, (ec2, token) => ec2.DescribeInstancesAsync(request, token), cancellationToken);
        return Instances(answer.Reservations, location).FirstOrDefault(i => i.State != CloudInstanceState.Terminated);
    }

    public async Task<CloudInstance> CreateAsync(CloudInstanceSpec spec, CancellationToken cancellationToken)
    {
        List<Tag> tags = [new("Name", spec.Name), new(MachineIdTag, spec.MachineId.ToString()), new(TenantIdTag, spec.TenantId.ToString())];
        var request = new RunInstancesRequest
        {
            ImageId = spec.Image,
            InstanceType = InstanceType.FindValue(spec.InstanceType),
            MinCount = 1,
            MaxCount = 1,
            // One launch operation makes one instance however often its request is repeated (a retry after a lost answer).
            ClientToken = spec.OperationId.ToString("N"),
            TagSpecifications = [new() { ResourceType = ResourceType.Instance, Tags = tags }, new() { ResourceType = ResourceType.Volume, Tags = tags }],
        };

        try
        {
            var answer = await SendAsync(spec.Location, (ec2, token) => ec2.RunInstancesAsync(request, token), cancellationToken);
            return Instances([answer.Reservation], spec.Location).Single();
        }
        catch (Exception failed) when (failed is CloudException or OperationCanceledException)
        {
            // A refused RunInstances makes nothing; a lost or abandoned answer may have made an instance. Either way none is left.
            using var cleanUp = new CancellationTokenSource(CleanUpTimeout);
            if (await FindQuietlyAsync(spec, cleanUp.Token) is { } made)
            {
                await DeleteAsync(made, cleanUp.Token);
            }

            throw;
        }
    }

    public async Task<CloudInstance?> GetAsync(CloudInstance instance, CancellationToken cancellationToken)
    {
        try
        {
            var answer = await SendAsync(instance.Location, (ec2, token) => ec2.DescribeInstancesAsync(new DescribeInstancesRequest { InstanceIds = [instance.Id] }, token), cancellationToken);
            return Instances(answer.Reservations, instance.Location).FirstOrDefault();
        }
        catch (CloudException gone) when (gone.Code == "InvalidInstanceID.NotFound")
        {
            return null;
        }
    }

    public Task StartAsync(CloudInstance instance, CancellationToken cancellationToken) =>
        SendAsync(instance.Location, (ec2, token) => ec2.StartInstancesAsync(new StartInstancesRequest { InstanceIds = [instance.Id] }, token), cancellationToken);

    public Task StopAsync(CloudInstance instance, CancellationToken cancellationToken) =>
        SendAsync(instance.Location, (ec2, token) => ec2.StopInstancesAsync(new StopInstancesRequest { InstanceIds = [instance.Id] }, token), cancellationToken);

    public async Task DeleteAsync(CloudInstance instance, CancellationToken cancellationToken)
    {
        try
        {
            await SendAsync(instance.Location, (ec2, token) => ec2.TerminateInstancesAsync(new TerminateInstancesRequest { InstanceIds = [instance.Id] }, token), cancellationToken);
        }
        catch (CloudException gone) when (gone.Code == "InvalidInstanceID.NotFound")
        {
        }
    }

    public void Dispose()
    {
        foreach (var client in _clients.Values)
        {
            client.Dispose();
        }
    }

    private async Task<CloudInstance?> FindQuietlyAsync(CloudInstanceSpec spec, CancellationToken cancellationToken)
    {
        try
        {
            return await FindAsync(spec.MachineId, spec.Location, cancellationToken);
        }
        catch (Exception unanswered) when (unanswered is CloudException or OperationCanceledException)
        {
            return null;
        }
    }

    private Task<T> SendAsync<T>(string region, Func<AmazonEC2Client, CancellationToken, Task<T>> send, CancellationToken cancellationToken) =>
        retry.RunAsync(token => SendOnceAsync(region, send, token), refused => Transient.Contains(refused.Code), cancellationToken);

    private async Task<T> SendOnceAsync<T>(string region, Func<AmazonEC2Client, CancellationToken, Task<T>> send, CancellationToken cancellationToken)
    {
        try
        {
            return await send(ClientOf(region), cancellationToken);
        }
        catch (AmazonServiceException refused) when (refused.ErrorCode is { Length: > 0 })
        {
            throw new CloudException("aws", refused.ErrorCode, refused.Message, (int)refused.StatusCode, refused);
        }
        catch (Exception unanswered) when (unanswered is AmazonServiceException or AmazonClientException or HttpRequestException)
        {
            // No answer AWS gave (no connection, a reset, a body that is not EC2's): the message says what happened.
            throw new CloudException("aws", "Unreachable", (unanswered.InnerException ?? unanswered).Message, null, unanswered);
        }
    }

    /// <summary>The region's client: its public endpoint, or the one endpoint of the settings (a test's fake, a proxy), signed for that region.</summary>
    private AmazonEC2Client ClientOf(string region) => _clients.GetOrAdd(region, name =>
    {
        var config = new AmazonEC2Config { MaxErrorRetry = 0, Timeout = timeout };
        if (endpoint is null)
        {
            config.RegionEndpoint = RegionEndpoint.GetBySystemName(name);
        }
        else
        {
            config.ServiceURL = endpoint.ToString();
            config.AuthenticationRegion = name;
        }

        return new AmazonEC2Client(credentials, config);
    });

    private static IEnumerable<CloudInstance> Instances(IEnumerable<Reservation>? reservations, string region) =>
        (reservations ?? []).SelectMany(r => r.Instances ?? []).Select(i => new CloudInstance(
            i.InstanceId, region, StateOf(i.State?.Name?.Value), i.PrivateIpAddress, i.PublicIpAddress, i.StateReason?.Message));

    private static CloudInstanceState StateOf(string? name) => name switch
    {
        "pending" => CloudInstanceState.Pending,
        "running" => CloudInstanceState.Running,
        "stopping" => CloudInstanceState.Stopping,
        "stopped" => CloudInstanceState.Stopped,
        "shutting-down" => CloudInstanceState.Terminating,
        _ => CloudInstanceState.Terminated,
    };
}
