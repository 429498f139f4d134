using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Microsoft.AspNetCore.Http;

namespace Platform.Testing.Clouds;

/// <summary>
/// Amazon EC2's Query API (2016-11-15) as documented, for the five actions the <c>aws</c> driver uses, on
/// loopback. Every request must carry a Signature Version 4 <c>Authorization</c> header that this fake recomputes
/// on its own from what arrived (canonical request, string to sign, derived key) with the one key pair it knows;
/// a wrong one is refused with <c>AuthFailure</c> or <c>SignatureDoesNotMatch</c>. Instances move through pending →
/// running, stopping → stopped and shutting-down → terminated over a few describes. Errors can be injected:
/// throttling (<c>RequestLimitExceeded</c>) and <c>InsufficientInstanceCapacity</c>.
/// </summary>
public sealed partial class Ec2Fake : IAsyncDisposable
{
    public const string Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/";
    private static readonly XNamespace Ec2 = Namespace;
    private readonly ConcurrentDictionary<string, Instance> _instances = new();
    private readonly ConcurrentQueue<string> _actions = new();
    private readonly object _gate = new();
    private LoopbackServer? _server;
    private int _throttleNext;
    private (string Code, string Message)? _failNextRun;

    /// <summary>A fresh key pair for this fake; only it is accepted.</summary>
    public string AccessKeyId { get; } = "AKIA" + Convert.ToHexString(RandomNumberGenerator.GetBytes(8));

    public string SecretAccessKey { get; } = Convert.ToBase64String(RandomNumberGenerator.GetBytes(30));

    public IReadOnlyList<string> Regions { get; init; } = ["us-east-1", "eu-west-1"];

    /// <summary>AMI id → the region it exists in.</summary>
    public IReadOnlyDictionary<string, string> Images { get; init; } = new Dictionary<string, string> { ["ami-0a1b2c3d4e5f60001"] = "us-east-1", ["ami-0a1b2c3d4e5f60002"] = "eu-west-1" };

    public IReadOnlyList<string> InstanceTypes { get; init; } = ["t3.micro", "t3.large"];

    /// <summary>How many describes an instance takes to go from a transitional state to the next stable one.</summary>
    public int PollsPerTransition { get; init; } = 2;

    public Uri Endpoint => _server!.Address;

    /// <summary>Every action asked for, signed correctly or not, in order (<c>RunInstances</c>, <c>DescribeInstances</c>…).</summary>
    public IReadOnlyList<string> Actions => _actions.ToArray();

    /// <summary>Every instance ever made, terminated ones included.</summary>
    public IReadOnlyList<FakeInstance> Instances => _instances.Values.Select(i => i.Snapshot()).ToList();

    public static async Task<Ec2Fake> StartAsync(Func<Ec2Fake>? create = null)
    {
        var fake = create?.Invoke() ?? new Ec2Fake();
        fake._server = await LoopbackServer.StartAsync(fake.HandleAsync);
        return fake;
    }

    /// <summary>The next <paramref name="count"/> requests are refused with <c>RequestLimitExceeded</c> (503), as AWS throttles.</summary>
    public void ThrottleNext(int count) => Interlocked.Exchange(ref _throttleNext, count);

    /// <summary>The next RunInstances is refused with <c>InsufficientInstanceCapacity</c> (500) and AWS's message for it.</summary>
    public void RefuseNextRunForCapacity() => _failNextRun = ("InsufficientInstanceCapacity",
        "We currently do not have sufficient t3.micro capacity in the Availability Zone you requested (us-east-1a). Our system will be working on provisioning additional capacity. You can currently get t3.micro capacity by not specifying an Availability Zone in your request or choosing us-east-1b, us-east-1c.");

    /// <summary>Stops an instance as someone would in the AWS console.</summary>
    public void StopOutside(string instanceId) => _instances[instanceId].Move("stopping");

    private async Task HandleAsync(HttpContext context)
    {
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer);
        var body = buffer.ToArray();
        var form = ParseForm(Encoding.UTF8.GetString(body));
        var action = form.GetValueOrDefault("Action") ?? "(none)";
        _actions.Enqueue(action);

        var (status, answer) = Authenticate(context.Request, body, out var region) ?? Answer(action, form, region!);
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/xml;charset=UTF-8";
        await context.Response.WriteAsync(answer.ToString(SaveOptions.DisableFormatting));
    }

    private (int, XElement) Answer(string action, Dictionary<string, string> form, string region)
    {
        if (form.GetValueOrDefault("Version") != "2016-11-15")
        {
            return Error(400, "InvalidParameterValue", $"Invalid API version '{form.GetValueOrDefault("Version")}'.");
        }

        if (Interlocked.Decrement(ref _throttleNext) >= 0)
        {
            return Error(503, "RequestLimitExceeded", "Request limit exceeded.");
        }

        lock (_gate)
        {
            return action switch
            {
                "RunInstances" => RunInstances(form, region),
                "DescribeInstances" => DescribeInstances(form, region),
                "StartInstances" => Change(form, region, "StartInstancesResponse", i => i.State switch
                {
                    "stopped" => i.Move("pending"),
                    "pending" or "running" => null,
                    _ => $"The instance '{i.Id}' is not in a state from which it can be started.",
                }),
                "StopInstances" => Change(form, region, "StopInstancesResponse", i => i.State switch
                {
                    "running" or "pending" => i.Move("stopping"),
                    "stopping" or "stopped" => null,
                    _ => $"The instance '{i.Id}' is not in a state from which it can be stopped.",
                }),
                "TerminateInstances" => Change(form, region, "TerminateInstancesResponse", i => i.State is "terminated" or "shutting-down" ? null : i.Move("shutting-down")),
                _ => Error(400, "InvalidAction", $"The action {action} is not valid for this web service."),
            };
        }
    }

    private (int, XElement) RunInstances(Dictionary<string, string> form, string region)
    {
        var token = form.GetValueOrDefault("ClientToken");
        if (token is not null && _instances.Values.FirstOrDefault(i => i.ClientToken == token) is { } again)
        {
            return (200, Reservation("RunInstancesResponse", again));
        }

        var image = form.GetValueOrDefault("ImageId");
        var type = form.GetValueOrDefault("InstanceType") ?? "m1.small";
        if (image is null || Images.GetValueOrDefault(image) != region)
        {
            return Error(400, "InvalidAMIID.NotFound", $"The image id '[{image}]' does not exist");
        }

        if (!InstanceTypes.Contains(type))
        {
            return Error(400, "InvalidParameterValue", $"Invalid value '{type}' for InstanceType.");
        }

        if (form.GetValueOrDefault("MinCount") != "1" || form.GetValueOrDefault("MaxCount") != "1")
        {
            return Error(400, "InvalidParameterValue", "This fake launches one instance at a time: MinCount and MaxCount must be 1.");
        }

        if (_failNextRun is { } failure)
        {
            _failNextRun = null;
            return Error(500, failure.Code, failure.Message);
        }

        var tags = new Dictionary<string, string>();
        for (var s = 1; form.TryGetValue($"TagSpecification.{s}.ResourceType", out var resourceType); s++)
        {
            for (var t = 1; resourceType == "instance" && form.TryGetValue($"TagSpecification.{s}.Tag.{t}.Key", out var key); t++)
            {
                tags[key] = form.GetValueOrDefault($"TagSpecification.{s}.Tag.{t}.Value") ?? "";
            }
        }

        var number = _instances.Count + 1;
        var instance = new Instance($"i-{RandomNumberGenerator.GetHexString(17, lowercase: true)}", region, image, type, tags, token,
            $"10.0.{number / 250}.{number % 250 + 4}", $"203.0.113.{number % 250 + 4}", PollsPerTransition);
        _instances[instance.Id] = instance;
        return (200, Reservation("RunInstancesResponse", instance));
    }

    private (int, XElement) DescribeInstances(Dictionary<string, string> form, string region)
    {
        var ids = Numbered(form, "InstanceId").ToList();
        var missing = ids.FirstOrDefault(id => !_instances.TryGetValue(id, out var i) || i.Region != region);
        if (missing is not null)
        {
            return Error(400, "InvalidInstanceID.NotFound", $"The instance ID '{missing}' does not exist");
        }

        var filters = new List<(string Name, List<string> Values)>();
        for (var f = 1; form.TryGetValue($"Filter.{f}.Name", out var name); f++)
        {
            filters.Add((name, Numbered(form, $"Filter.{f}.Value").ToList()));
        }

        var found = _instances.Values.Where(i => i.Region == region && (ids.Count == 0 || ids.Contains(i.Id))).ToList();
        found.ForEach(i => i.Observe());
        found = found.Where(i => filters.All(f => f.Values.Contains(f.Name switch
        {
            "instance-state-name" => i.State,
            var tag when tag.StartsWith("tag:", StringComparison.Ordinal) => i.Tags.GetValueOrDefault(tag[4..]) ?? "\0",
            _ => "\0",
        }))).ToList();
        return (200, new XElement(Ec2 + "DescribeInstancesResponse",
            new XElement(Ec2 + "requestId", Guid.NewGuid()),
            new XElement(Ec2 + "reservationSet", found.Select(i => new XElement(Ec2 + "item", ReservationContent(i))))));
    }

    private (int, XElement) Change(Dictionary<string, string> form, string region, string response, Func<Instance, string?> change)
    {
        var items = new List<XElement>();
        foreach (var id in Numbered(form, "InstanceId"))
        {
            if (!_instances.TryGetValue(id, out var instance) || instance.Region != region)
            {
                return Error(400, "InvalidInstanceID.NotFound", $"The instance ID '{id}' does not exist");
            }

            var previous = instance.State;
            if (change(instance) is { } refusal)
            {
                return Error(400, "IncorrectInstanceState", refusal);
            }

            items.Add(new XElement(Ec2 + "item", new XElement(Ec2 + "instanceId", id), StateElement("currentState", instance.State), StateElement("previousState", previous)));
        }

        return (200, new XElement(Ec2 + response, new XElement(Ec2 + "requestId", Guid.NewGuid()), new XElement(Ec2 + "instancesSet", items)));
    }

    /// <summary>
    /// SigV4 as documented ("Create a signed AWS API request"), recomputed from the request as it arrived; null when
    /// it holds, else the error AWS answers.
    /// </summary>
    private (int, XElement)? Authenticate(HttpRequest request, byte[] body, out string? region)
    {
        region = null;
        var match = AuthorizationHeader().Match(request.Headers.Authorization.ToString());
        if (!match.Success)
        {
            return Error(401, "AuthFailure", "AWS was not able to validate the provided access credentials");
        }

        var (accessKey, date, scopeRegion, service, signedHeaders, signature) =
            (match.Groups["key"].Value, match.Groups["date"].Value, match.Groups["region"].Value, match.Groups["service"].Value, match.Groups["headers"].Value, match.Groups["signature"].Value);
        if (accessKey != AccessKeyId)
        {
            return Error(401, "AuthFailure", "AWS was not able to validate the provided access credentials");
        }

        var amzDate = request.Headers["X-Amz-Date"].ToString();
        if (service != "ec2" || !Regions.Contains(scopeRegion) || !amzDate.StartsWith(date, StringComparison.Ordinal)
            || !DateTime.TryParseExact(amzDate, "yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var signedAt))
        {
            return Error(401, "AuthFailure", $"Credential should be scoped to a valid region and the ec2 service, on the date of X-Amz-Date; not '{date}/{scopeRegion}/{service}'.");
        }

        if ((DateTime.UtcNow - signedAt).Duration() > TimeSpan.FromMinutes(15))
        {
            return Error(400, "RequestExpired", $"Request has expired. Timestamp date is {amzDate}");
        }

        var names = signedHeaders.Split(';');
        if (!names.Contains("host") || !names.Contains("x-amz-date") || !names.SequenceEqual(names.Order(StringComparer.Ordinal)))
        {
            return Error(403, "SignatureDoesNotMatch", "SignedHeaders must be sorted and include host and x-amz-date.");
        }

        var canonicalHeaders = string.Concat(names.Select(name => $"{name}:{Canonical(name == "host" ? request.Host.Value ?? "" : request.Headers[name].ToString())}\n"));
        var canonicalQuery = string.Join('&', request.Query.SelectMany(q => q.Value.Select(v => (Key: Uri.EscapeDataString(q.Key), Value: Uri.EscapeDataString(v ?? ""))))
            .OrderBy(p => p.Key, StringComparer.Ordinal).ThenBy(p => p.Value, StringComparer.Ordinal).Select(p => $"{p.Key}={p.Value}"));
        var canonicalRequest = $"{request.Method}\n{(request.Path.HasValue ? request.Path.Value : "/")}\n{canonicalQuery}\n{canonicalHeaders}\n{signedHeaders}\n{Hex(SHA256.HashData(body))}";
        var scope = $"{date}/{scopeRegion}/{service}/aws4_request";
        var stringToSign = $"AWS4-HMAC-SHA256\n{amzDate}\n{scope}\n{Hex(SHA256.HashData(Encoding.UTF8.GetBytes(canonicalRequest)))}";
        var key = Encoding.UTF8.GetBytes("AWS4" + SecretAccessKey);
        foreach (var part in new[] { date, scopeRegion, service, "aws4_request" })
        {
            key = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(part));
        }

        var expected = Hex(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(stringToSign)));
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(signature)))
        {
            return Error(403, "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.");
        }

        region = scopeRegion;
        return null;
    }

    private static string Canonical(string value) => MultipleSpaces().Replace(value.Trim(), " ");

    private static string Hex(byte[] bytes) => Convert.ToHexStringLower(bytes);

    private static IEnumerable<string> Numbered(Dictionary<string, string> form, string prefix)
    {
        for (var n = 1; form.TryGetValue($"{prefix}.{n}", out var value); n++)
        {
            yield return value;
        }
    }

    private static Dictionary<string, string> ParseForm(string body) =>
        body.Split('&', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('=', 2))
            .ToDictionary(p => Uri.UnescapeDataString(p[0].Replace('+', ' ')), p => p.Length > 1 ? Uri.UnescapeDataString(p[1].Replace('+', ' ')) : "");

    private static XElement Reservation(string response, Instance instance) =>
        new(Ec2 + response, new XElement(Ec2 + "requestId", Guid.NewGuid()), ReservationContent(instance));

    private static IEnumerable<XElement> ReservationContent(Instance instance) =>
    [
        new XElement(Ec2 + "reservationId", "r-" + instance.Id[2..]),
        new XElement(Ec2 + "ownerId", "123456789012"),
        new XElement(Ec2 + "groupSet"),
        new XElement(Ec2 + "instancesSet", new XElement(Ec2 + "item", instance.ToXml())),
    ];

    private static XElement StateElement(string name, string state) =>
        new(Ec2 + name, new XElement(Ec2 + "code", StateCode(state)), new XElement(Ec2 + "name", state));

    private static int StateCode(string state) => state switch
    {
        "pending" => 0,
        "running" => 16,
        "shutting-down" => 32,
        "terminated" => 48,
        "stopping" => 64,
        _ => 80,
    };

    /// <summary>The documented error document: <c>Response/Errors/Error/{Code,Message}</c> and a <c>RequestID</c>.</summary>
    private static (int, XElement) Error(int status, string code, string message) => (status, new XElement("Response",
        new XElement("Errors", new XElement("Error", new XElement("Code", code), new XElement("Message", message))),
        new XElement("RequestID", Guid.NewGuid())));

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    [GeneratedRegex(@"^AWS4-HMAC-SHA256 Credential=(?<key>[^/]+)/(?<date>\d{8})/(?<region>[^/]+)/(?<service>[^/]+)/aws4_request, ?SignedHeaders=(?<headers>[a-z0-9;-]+), ?Signature=(?<signature>[0-9a-f]{64})$")]
    private static partial Regex AuthorizationHeader();

    [GeneratedRegex(" {2,}")]
    private static partial Regex MultipleSpaces();

    /// <summary>An instance as a test sees it.</summary>
    public sealed record FakeInstance(string Id, string Region, string ImageId, string InstanceType, string State, IReadOnlyDictionary<string, string> Tags);

    private sealed class Instance(string id, string region, string image, string type, Dictionary<string, string> tags, string? clientToken, string privateIp, string publicIp, int pollsPerTransition)
    {
        private readonly int _pollsPerTransition = pollsPerTransition;
        private int _pollsLeft = pollsPerTransition;

        public string Id => id;

        public string Region => region;

        public string? ClientToken => clientToken;

        public Dictionary<string, string> Tags => tags;

        public string State { get; private set; } = "pending";

        public string? Reason { get; private set; }

        /// <summary>Moves to a transitional state; its stable successor comes after some describes. Returns null (no refusal).</summary>
        public string? Move(string state)
        {
            (State, _pollsLeft) = (state, _pollsPerTransition);
            Reason = state switch
            {
                "stopping" => "User initiated",
                "shutting-down" => "Client.UserInitiatedShutdown: User initiated shutdown",
                _ => null,
            };
            return null;
        }

        public void Observe()
        {
            if (State is "pending" or "stopping" or "shutting-down" && --_pollsLeft < 0)
            {
                State = State switch { "pending" => "running", "stopping" => "stopped", _ => "terminated" };
            }
        }

        public FakeInstance Snapshot() => new(id, region, image, type, State, new Dictionary<string, string>(tags));

        public IEnumerable<XElement> ToXml()
        {
            yield return new XElement(Ec2 + "instanceId", id);
            yield return new XElement(Ec2 + "imageId", image);
            yield return StateElement("instanceState", State);
            yield return new XElement(Ec2 + "instanceType", type);
            yield return new XElement(Ec2 + "placement", new XElement(Ec2 + "availabilityZone", region + "a"));
            if (State is not "terminated")
            {
                yield return new XElement(Ec2 + "privateIpAddress", privateIp);
            }

            if (State is "running")
            {
                yield return new XElement(Ec2 + "ipAddress", publicIp);
            }

            if (Reason is not null)
            {
                yield return new XElement(Ec2 + "stateReason", new XElement(Ec2 + "code", Reason.Split(':')[0]), new XElement(Ec2 + "message", Reason));
            }

            yield return new XElement(Ec2 + "tagSet", tags.Select(t => new XElement(Ec2 + "item", new XElement(Ec2 + "key", t.Key), new XElement(Ec2 + "value", t.Value))));
        }
    }
}
