using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Xml.Linq;
using Amazon.Runtime;
using Amazon.Runtime.Internal.Auth;

namespace Platform.Provisioning.Drivers.Cloud.Aws;

/// <summary>
/// EC2 instances through the EC2 Query API (version 2016-11-15): form-encoded POSTs signed with Signature
/// Version 4 (the signing key, string to sign and signature are AWSSDK.Core's), XML answers. AWSSDK.EC2 is not
/// obtainable here, and these five actions are all the driver needs.
/// </summary>
public sealed class Ec2Client(HttpClient http, AWSCredentials credentials, Func<string, Uri> endpointOf, CloudRetry retry, TimeProvider time) : ICloudInstances
{
    public const string ApiVersion = "2016-11-15";
    public const string MachineIdTag = "platform:machine-id";
    public const string TenantIdTag = "platform:tenant-id";

    /// <summary>What AWS answers when it throttles or is briefly unable to serve; the request is repeated after a backoff.</summary>
    private static readonly HashSet<string> Transient = ["RequestLimitExceeded", "Throttling", "ServiceUnavailable", "Unavailable", "InternalError"];

    // Not shutting-down: an instance on its way out is not one a launch can start again.
    private static readonly TimeSpan CleanUpTimeout = TimeSpan.FromSeconds(30);

    private static readonly string[] LiveStates = ["pending", "running", "stopping", "stopped"];

    /// <summary>The public endpoint of a region: <c>https://ec2.{region}.amazonaws.com/</c>.</summary>
    public static Uri PublicEndpoint(string region) => new($"https://ec2.{region}.amazonaws.com/");

    public async Task<CloudInstance?> FindAsync(Guid machineId, string location, CancellationToken cancellationToken)
    {
        var parameters = new List<KeyValuePair<string, string>> { new("Filter.1.Name", $"tag:{MachineIdTag}"), new("Filter.1.Value.1", machineId.ToString()), new("Filter.2.Name", "instance-state-name") };
        parameters.AddRange(LiveStates.Select((state, i) => new KeyValuePair<string, string>($"Filter.2.Value.{i + 1}", state)));
        var answer = await SendAsync(location, "DescribeInstances", parameters, cancellationToken);
        return Instances(answer, location).FirstOrDefault(i => i.State != CloudInstanceState.Terminated);
    }

    public async Task<CloudInstance> CreateAsync(CloudInstanceSpec spec, CancellationToken cancellationToken)
    {
        var tags = new[] { ("Name", spec.Name), (MachineIdTag, spec.MachineId.ToString()), (TenantIdTag, spec.TenantId.ToString()) };
        var parameters = new List<KeyValuePair<string, string>>
        {
            new("ImageId", spec.Image),
            new("InstanceType", spec.InstanceType),
            new("MinCount", "1"),
            new("MaxCount", "1"),
            // One launch operation makes one instance however often its request is repeated (a retry after a lost answer).
            new("ClientToken", spec.OperationId.ToString("N")),
            new("TagSpecification.1.ResourceType", "instance"),
            new("TagSpecification.2.ResourceType", "volume"),
        };
        foreach (var specification in new[] { 1, 2 })
        {
            parameters.AddRange(tags.SelectMany((tag, i) => new KeyValuePair<string, string>[]
            {
                new($"TagSpecification.{specification}.Tag.{i + 1}.Key", tag.Item1),
                new($"TagSpecification.{specification}.Tag.{i + 1}.Value", tag.Item2),
            }));
        }

        try
        {
            var answer = await SendAsync(spec.Location, "RunInstances", parameters, cancellationToken);
            return Instances(answer, spec.Location).Single();
        }
        catch (Exception failed) when (failed is CloudException or HttpRequestException or OperationCanceledException)
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
            var answer = await SendAsync(instance.Location, "DescribeInstances", [new("InstanceId.1", instance.Id)], cancellationToken);
            return Instances(answer, instance.Location).FirstOrDefault();
        }
        catch (CloudException gone) when (gone.Code == "InvalidInstanceID.NotFound")
        {
            return null;
        }
    }

    public Task StartAsync(CloudInstance instance, CancellationToken cancellationToken) =>
        SendAsync(instance.Location, "StartInstances", [new("InstanceId.1", instance.Id)], cancellationToken);

    public Task StopAsync(CloudInstance instance, CancellationToken cancellationToken) =>
        SendAsync(instance.Location, "StopInstances", [new("InstanceId.1", instance.Id)], cancellationToken);

    public async Task DeleteAsync(CloudInstance instance, CancellationToken cancellationToken)
    {
        try
        {
            await SendAsync(instance.Location, "TerminateInstances", [new("InstanceId.1", instance.Id)], cancellationToken);
        }
        catch (CloudException gone) when (gone.Code == "InvalidInstanceID.NotFound")
        {
        }
    }

    private async Task<CloudInstance?> FindQuietlyAsync(CloudInstanceSpec spec, CancellationToken cancellationToken)
    {
        try
        {
            return await FindAsync(spec.MachineId, spec.Location, cancellationToken);
        }
        catch (Exception unanswered) when (unanswered is CloudException or HttpRequestException or OperationCanceledException)
        {
            return null;
        }
    }

    private Task<XElement> SendAsync(string region, string action, IEnumerable<KeyValuePair<string, string>> parameters, CancellationToken cancellationToken) =>
        retry.RunAsync(token => SendOnceAsync(region, action, parameters, token), refused => Transient.Contains(refused.Code), cancellationToken);

    private async Task<XElement> SendOnceAsync(string region, string action, IEnumerable<KeyValuePair<string, string>> parameters, CancellationToken cancellationToken)
    {
        var body = string.Join('&', new KeyValuePair<string, string>[] { new("Action", action), new("Version", ApiVersion) }.Concat(parameters)
            .Select(p => $"{Uri.EscapeDataString(p.Key)}={Uri.EscapeDataString(p.Value)}"));
        var endpoint = endpointOf(region);
        using var request = new HttpRequestMessage(HttpMethod.Post, endpoint) { Content = new ByteArrayContent(Encoding.UTF8.GetBytes(body)) };
        request.Content.Headers.TryAddWithoutValidation("Content-Type", "application/x-www-form-urlencoded; charset=utf-8");
        await SignAsync(request, endpoint, region, body);

        using var response = await http.SendAsync(request, cancellationToken);
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        var xml = TryParse(text);
        if (response.IsSuccessStatusCode && xml is not null)
        {
            return xml;
        }

        var error = xml?.Descendants().FirstOrDefault(e => e.Name.LocalName == "Error");
        throw new CloudException("aws", Child(error, "Code") ?? $"HTTP {(int)response.StatusCode}",
            Child(error, "Message") ?? (text.Length > 200 ? text[..200] : text), (int)response.StatusCode);
    }

    /// <summary>
    /// Signature Version 4: the canonical request is built here from exactly what is sent; AWSSDK.Core turns it into
    /// the string to sign, derives the signing key from the secret and signs.
    /// </summary>
    private async Task SignAsync(HttpRequestMessage request, Uri endpoint, string region, string body)
    {
        var identity = await credentials.GetCredentialsAsync();
        var signedAt = time.GetUtcNow().UtcDateTime;
        var amzDate = signedAt.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
        var headers = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["content-type"] = "application/x-www-form-urlencoded; charset=utf-8",
            ["host"] = endpoint.IsDefaultPort ? endpoint.Host : endpoint.Authority,
            ["x-amz-date"] = amzDate,
        };
        if (identity.UseToken)
        {
            headers["x-amz-security-token"] = identity.Token;
            request.Headers.TryAddWithoutValidation("X-Amz-Security-Token", identity.Token);
        }

        var signedHeaders = string.Join(';', headers.Keys);
        var canonicalRequest = string.Join('\n',
            "POST", endpoint.AbsolutePath, "", string.Concat(headers.Select(h => $"{h.Key}:{h.Value}\n")), signedHeaders,
            Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(body))));
        var signature = AWS4Signer.ComputeSignature(identity, region, signedAt, "ec2", signedHeaders, canonicalRequest);
        request.Headers.TryAddWithoutValidation("X-Amz-Date", amzDate);
        request.Headers.TryAddWithoutValidation("Authorization", signature.ForAuthorizationHeader);
    }

    private static IEnumerable<CloudInstance> Instances(XElement answer, string region) =>
        answer.Descendants().Where(e => e.Name.LocalName == "instancesSet").SelectMany(set => set.Elements().Where(e => e.Name.LocalName == "item"))
            .Select(item => new CloudInstance(
                Child(item, "instanceId")!,
                region,
                StateOf(Child(item.Elements().FirstOrDefault(e => e.Name.LocalName == "instanceState"), "name")),
                Child(item, "privateIpAddress"),
                Child(item, "ipAddress"),
                Child(item.Elements().FirstOrDefault(e => e.Name.LocalName == "stateReason"), "message")));

    private static CloudInstanceState StateOf(string? name) => name switch
    {
        "pending" => CloudInstanceState.Pending,
        "running" => CloudInstanceState.Running,
        "stopping" => CloudInstanceState.Stopping,
        "stopped" => CloudInstanceState.Stopped,
        "shutting-down" => CloudInstanceState.Terminating,
        _ => CloudInstanceState.Terminated,
    };

    private static string? Child(XElement? element, string name) => element?.Elements().FirstOrDefault(e => e.Name.LocalName == name)?.Value;

    private static XElement? TryParse(string text)
    {
        try
        {
            return XElement.Parse(text);
        }
        catch (System.Xml.XmlException)
        {
            return null;
        }
    }
}
