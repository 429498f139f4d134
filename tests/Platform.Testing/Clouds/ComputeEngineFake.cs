using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;

namespace Platform.Testing.Clouds;

/// <summary>
/// Google's OAuth2 token endpoint and Compute Engine's REST API v1 (instances insert/get/start/stop/delete, zone
/// operations) as documented, on loopback. The token endpoint takes only a JWT-bearer assertion signed RS256 by the
/// service account key this fake made (checked with its public key), for the right <c>iss</c>, <c>aud</c>,
/// <c>scope</c> and a short, current <c>iat</c>/<c>exp</c>; the compute endpoints take only the bearer tokens it
/// issued. Changes answer zone operations that go PENDING → RUNNING → DONE as they are polled. Errors can be
/// injected: throttling (429 <c>rateLimitExceeded</c>) and an exhausted zone (<c>ZONE_RESOURCE_POOL_EXHAUSTED</c>).
/// </summary>
public sealed partial class ComputeEngineFake : IAsyncDisposable
{
    private readonly RSA _key = RSA.Create(2048);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _tokens = new();
    private readonly ConcurrentDictionary<string, Instance> _instances = new();
    private readonly ConcurrentDictionary<string, Operation> _operations = new();
    private readonly ConcurrentQueue<string> _requests = new();
    private readonly object _gate = new();
    private LoopbackServer? _server;
    private int _throttleNext;
    private bool _exhaustNextInsert;

    public string Project { get; init; } = "platform-test";

    public string ClientEmail { get; init; } = "platform-agent@platform-test.iam.gserviceaccount.com";

    public string PrivateKeyId { get; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(20));

    public IReadOnlyList<string> Zones { get; init; } = ["us-central1-a", "europe-west1-b"];

    public IReadOnlyList<string> MachineTypes { get; init; } = ["e2-small", "e2-standard-4"];

    public IReadOnlyList<string> Images { get; init; } = ["projects/debian-cloud/global/images/family/debian-12"];

    /// <summary>The access tokens' lifetime (<c>expires_in</c>).</summary>
    public TimeSpan TokenLifetime { get; init; } = TimeSpan.FromHours(1);

    public int PollsPerTransition { get; init; } = 2;

    public Uri TokenEndpoint => new(_server!.Address, "token");

    public Uri ComputeEndpoint => new(_server!.Address, "compute/v1/");

    /// <summary>How many access tokens were issued.</summary>
    public int TokensIssued => _tokens.Count;

    /// <summary>Every request, as <c>METHOD /path</c>, in order.</summary>
    public IReadOnlyList<string> Requests => _requests.ToArray();

    /// <summary>The instances that exist now (deleted ones are gone, as in Compute Engine).</summary>
    public IReadOnlyList<FakeInstance> Instances => _instances.Values.Select(i => new FakeInstance(i.Name, i.Zone, i.MachineType, i.Status, new Dictionary<string, string>(i.Labels))).ToList();

    public static async Task<ComputeEngineFake> StartAsync(Func<ComputeEngineFake>? create = null)
    {
        var fake = create?.Invoke() ?? new ComputeEngineFake();
        fake._server = await LoopbackServer.StartAsync(fake.HandleAsync);
        return fake;
    }

    /// <summary>A service account JSON key file for this fake's account, as the Cloud console downloads it.</summary>
    public string KeyJson(RSA? otherKey = null) => new JsonObject
    {
        ["type"] = "service_account",
        ["project_id"] = Project,
        ["private_key_id"] = PrivateKeyId,
        ["private_key"] = (otherKey ?? _key).ExportPkcs8PrivateKeyPem(),
        ["client_email"] = ClientEmail,
        ["client_id"] = "100000000000000000001",
        ["token_uri"] = TokenEndpoint.ToString(),
    }.ToJsonString();

    /// <summary>The private key's PEM, for tests that assert it never shows up anywhere.</summary>
    public string PrivateKeyPem => _key.ExportPkcs8PrivateKeyPem();

    public void ThrottleNext(int count) => Interlocked.Exchange(ref _throttleNext, count);

    /// <summary>The next insert's operation ends DONE with <c>ZONE_RESOURCE_POOL_EXHAUSTED</c>.</summary>
    public void ExhaustNextInsert() => _exhaustNextInsert = true;

    /// <summary>Stops an instance as someone would in the Cloud console.</summary>
    public void StopOutside(string name) => _instances[name].Status = "TERMINATED";

    private async Task HandleAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? "/";
        _requests.Enqueue($"{context.Request.Method} {path}");
        var (status, answer) = path == "/token" ? await TokenAsync(context.Request) : await ComputeAsync(context.Request, path);
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json; charset=UTF-8";
        await context.Response.WriteAsync(answer.ToJsonString());
    }

    /// <summary>The audience Google's documentation names for every access token request's assertion.</summary>
    public const string TokenAudience = "https://oauth2.googleapis.com/token";

    private async Task<(int, JsonNode)> TokenAsync(HttpRequest request)
    {
        var form = await request.ReadFormAsync();
        if (form["grant_type"] != "urn:ietf:params:oauth:grant-type:jwt-bearer")
        {
            return TokenError("unsupported_grant_type", "Invalid grant_type: " + form["grant_type"]);
        }

        var parts = form["assertion"].ToString().Split('.');
        if (parts.Length != 3)
        {
            return TokenError("invalid_request", "Invalid JWT: the assertion is not three base64url parts.");
        }

        JsonNode header, claims;
        try
        {
            (header, claims) = (JsonNode.Parse(Base64Url(parts[0]))!, JsonNode.Parse(Base64Url(parts[1]))!);
        }
        catch (Exception malformed) when (malformed is JsonException or FormatException)
        {
            return TokenError("invalid_request", "Invalid JWT: its header or claims are not base64url JSON.");
        }

        if (header["alg"]?.GetValue<string>() != "RS256" || !_key.VerifyData(Encoding.ASCII.GetBytes($"{parts[0]}.{parts[1]}"), Base64Url(parts[2]), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1))
        {
            return TokenError("invalid_grant", "Invalid JWT Signature.");
        }

        if (header["kid"]?.GetValue<string>() is { } kid && kid != PrivateKeyId)
        {
            return TokenError("invalid_grant", "Invalid JWT Signature.");
        }

        if (claims["iss"]?.GetValue<string>() != ClientEmail)
        {
            return TokenError("invalid_grant", "Invalid grant: account not found");
        }

        // "When making an access token request this value is always https://oauth2.googleapis.com/token", wherever the key's token_uri points.
        if (claims["aud"]?.GetValue<string>() != TokenAudience)
        {
            return TokenError("invalid_grant", $"Invalid JWT: the audience must be {TokenAudience}, not {claims["aud"]}.");
        }

        if (claims["scope"]?.GetValue<string>().Split(' ').Contains("https://www.googleapis.com/auth/compute") != true)
        {
            return TokenError("invalid_scope", "Invalid OAuth scope or ID token audience provided.");
        }

        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var (iat, exp) = (claims["iat"]?.GetValue<long>() ?? 0, claims["exp"]?.GetValue<long>() ?? 0);
        if (iat > now + 60 || exp <= now || exp - iat > 3600)
        {
            return TokenError("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.");
        }

        var token = "ya29." + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
        _tokens[token] = DateTimeOffset.UtcNow + TokenLifetime;
        return (200, new JsonObject { ["access_token"] = token, ["expires_in"] = (int)TokenLifetime.TotalSeconds, ["token_type"] = "Bearer" });
    }

    private async Task<(int, JsonNode)> ComputeAsync(HttpRequest request, string path)
    {
        var bearer = request.Headers.Authorization.ToString();
        if (!bearer.StartsWith("Bearer ", StringComparison.Ordinal) || !_tokens.TryGetValue(bearer[7..], out var expires) || expires < DateTimeOffset.UtcNow)
        {
            return Error(401, "authError", "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.");
        }

        if (Interlocked.Decrement(ref _throttleNext) >= 0)
        {
            return Error(429, "rateLimitExceeded", "RESOURCE_EXHAUSTED",
                $"Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service 'compute.googleapis.com' for consumer 'project_number:{Project}'.");
        }

        var match = ComputePath().Match(path);
        if (!match.Success || match.Groups["project"].Value != Project)
        {
            return Error(404, "notFound", "NOT_FOUND", $"The resource '{path}' was not found");
        }

        var zone = match.Groups["zone"].Value;
        if (!Zones.Contains(zone))
        {
            return Error(400, "invalid", "INVALID_ARGUMENT", $"Invalid value for field 'zone': '{zone}'. Unknown zone.");
        }

        using var reader = new StreamReader(request.Body);
        var text = await reader.ReadToEndAsync();
        var body = text.Length > 0 ? JsonNode.Parse(text) : null;
        lock (_gate)
        {
            var (collection, name, verb) = (match.Groups["collection"].Value, match.Groups["name"].Value, match.Groups["verb"].Value);
            return (request.Method, collection, name, verb) switch
            {
                ("GET", "operations", _, "") => PollOperation(zone, name),
                ("POST", "instances", "", "") => Insert(zone, body),
                ("GET", "instances", _, "") => WithInstance(zone, name, instance => (200, instance.ToJson(Project))),
                ("POST", "instances", _, "start") => WithInstance(zone, name, instance => StartOperation(zone, "start", instance, "STAGING", "RUNNING")),
                ("POST", "instances", _, "stop") => WithInstance(zone, name, instance => StartOperation(zone, "stop", instance, "STOPPING", "TERMINATED")),
                ("DELETE", "instances", _, "") => WithInstance(zone, name, instance => StartOperation(zone, "delete", instance, "STOPPING", null)),
                _ => Error(404, "notFound", "NOT_FOUND", $"The resource '{path}' was not found"),
            };
        }
    }

    private (int, JsonNode) Insert(string zone, JsonNode? body)
    {
        var name = body?["name"]?.GetValue<string>() ?? "";
        if (!InstanceName().IsMatch(name))
        {
            return Error(400, "invalid", "INVALID_ARGUMENT", $"Invalid value for field 'resource.name': '{name}'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{{0,61}}[a-z0-9])?)'");
        }

        var machineType = body?["machineType"]?.GetValue<string>().Split('/') ?? [];
        if (machineType is not ["zones", var typeZone, "machineTypes", var type] || typeZone != zone || !MachineTypes.Contains(type))
        {
            return Error(400, "invalid", "INVALID_ARGUMENT", $"Invalid value for field 'resource.machineType': '{body?["machineType"]}'. Machine type does not exist in zone {zone}.");
        }

        var image = body?["disks"]?[0]?["initializeParams"]?["sourceImage"]?.GetValue<string>();
        if (image is null || !Images.Contains(image))
        {
            return Error(404, "notFound", "NOT_FOUND", $"The resource '{image}' was not found");
        }

        var labels = body?["labels"]?.AsObject().ToDictionary(l => l.Key, l => l.Value!.GetValue<string>()) ?? [];
        if (labels.Any(l => !LabelKey().IsMatch(l.Key) || !LabelValue().IsMatch(l.Value)))
        {
            return Error(400, "invalid", "INVALID_ARGUMENT", "Invalid value for field 'resource.labels': keys and values must be lowercase letters, digits, '_' and '-', at most 63 characters.");
        }

        if (_instances.ContainsKey(name))
        {
            return Error(409, "alreadyExists", "ALREADY_EXISTS", $"The resource 'projects/{Project}/zones/{zone}/instances/{name}' already exists");
        }

        if (_exhaustNextInsert)
        {
            _exhaustNextInsert = false;
            return Register(new Operation(Id(), zone, "insert", name, null, null, PollsPerTransition)
            {
                Error = ("ZONE_RESOURCE_POOL_EXHAUSTED", $"The zone 'projects/{Project}/zones/{zone}' does not have enough resources available to fulfill the request.  Try a different zone, or try again later."),
            });
        }

        var number = _instances.Count + 1;
        var instance = new Instance(name, zone, machineType[3], labels, $"10.128.0.{number + 1}", $"34.42.0.{number + 1}", PollsPerTransition);
        _instances[name] = instance;
        return Register(new Operation(Id(), zone, "insert", name, instance, null, PollsPerTransition));
    }

    private (int, JsonNode) StartOperation(string zone, string type, Instance instance, string during, string? after)
    {
        instance.Status = during;
        return Register(new Operation(Id(), zone, type, instance.Name, instance, after, PollsPerTransition));
    }

    private (int, JsonNode) Register(Operation operation)
    {
        _operations[operation.Name] = operation;
        return (200, operation.ToJson(Project, _server!.Address));
    }

    private (int, JsonNode) PollOperation(string zone, string name)
    {
        if (!_operations.TryGetValue(name, out var operation) || operation.Zone != zone)
        {
            return Error(404, "notFound", "NOT_FOUND", $"The resource 'projects/{Project}/zones/{zone}/operations/{name}' was not found");
        }

        if (operation.Advance() && operation.Type == "delete")
        {
            _instances.TryRemove(operation.Target, out _);
        }

        return (200, operation.ToJson(Project, _server!.Address));
    }

    private (int, JsonNode) WithInstance(string zone, string name, Func<Instance, (int, JsonNode)> act)
    {
        if (!_instances.TryGetValue(name, out var instance) || instance.Zone != zone)
        {
            return Error(404, "notFound", "NOT_FOUND", $"The resource 'projects/{Project}/zones/{zone}/instances/{name}' was not found");
        }

        instance.Observe();
        return act(instance);
    }

    private static string Id() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));

    private static byte[] Base64Url(string text) => Convert.FromBase64String(text.Replace('-', '+').Replace('_', '/') + new string('=', (4 - text.Length % 4) % 4));

    /// <summary>Google's documented error shape.</summary>
    private static (int, JsonNode) Error(int code, string reason, string status, string message) => (code, new JsonObject
    {
        ["error"] = new JsonObject
        {
            ["code"] = code,
            ["message"] = message,
            ["errors"] = new JsonArray(new JsonObject { ["message"] = message, ["domain"] = code == 429 ? "usageLimits" : "global", ["reason"] = reason }),
            ["status"] = status,
        },
    });

    private static (int, JsonNode) TokenError(string error, string description) => (400, new JsonObject { ["error"] = error, ["error_description"] = description });

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        _key.Dispose();
    }

    [GeneratedRegex("^/compute/v1/projects/(?<project>[^/]+)/zones/(?<zone>[^/]+)/(?<collection>instances|operations)(/(?<name>[^/]+))?(/(?<verb>start|stop))?$")]
    private static partial Regex ComputePath();

    [GeneratedRegex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")]
    private static partial Regex InstanceName();

    [GeneratedRegex("^[a-z][a-z0-9_-]{0,62}$")]
    private static partial Regex LabelKey();

    [GeneratedRegex("^[a-z0-9_-]{0,63}$")]
    private static partial Regex LabelValue();

    /// <summary>An instance as a test sees it.</summary>
    public sealed record FakeInstance(string Name, string Zone, string MachineType, string Status, IReadOnlyDictionary<string, string> Labels);

    private sealed class Instance(string name, string zone, string machineType, Dictionary<string, string> labels, string privateIp, string publicIp, int pollsPerTransition)
    {
        private int _polls;

        public string Name => name;

        public string Zone => zone;

        public string MachineType => machineType;

        public Dictionary<string, string> Labels => labels;

        public string Status { get; set; } = "PROVISIONING";

        /// <summary>A new instance is provisioned and staged over some reads before it runs.</summary>
        public void Observe()
        {
            if (Status is "PROVISIONING" or "STAGING" && ++_polls > pollsPerTransition)
            {
                (Status, _polls) = (Status == "PROVISIONING" ? "STAGING" : "RUNNING", 0);
            }
        }

        public JsonNode ToJson(string project) => new JsonObject
        {
            ["kind"] = "compute#instance",
            ["name"] = name,
            ["zone"] = $"projects/{project}/zones/{zone}",
            ["machineType"] = $"projects/{project}/zones/{zone}/machineTypes/{machineType}",
            ["status"] = Status,
            ["labels"] = new JsonObject(labels.Select(l => KeyValuePair.Create(l.Key, (JsonNode?)l.Value))),
            ["networkInterfaces"] = new JsonArray(new JsonObject
            {
                ["networkIP"] = privateIp,
                ["accessConfigs"] = Status == "RUNNING" ? new JsonArray(new JsonObject { ["type"] = "ONE_TO_ONE_NAT", ["natIP"] = publicIp }) : new JsonArray(),
            }),
        };
    }

    private sealed class Operation(string id, string zone, string type, string target, Instance? instance, string? after, int pollsPerTransition)
    {
        private int _polls;

        public string Name { get; } = $"operation-{id}";

        public string Zone => zone;

        public string Type => type;

        public string Target => target;

        public string Status { get; private set; } = "PENDING";

        public (string Code, string Message)? Error { get; init; }

        /// <summary>One poll's worth of progress; true when this poll finished it.</summary>
        public bool Advance()
        {
            if (Status == "DONE" || ++_polls <= pollsPerTransition)
            {
                return false;
            }

            _polls = 0;
            Status = Status == "PENDING" ? "RUNNING" : "DONE";
            if (Status == "DONE" && instance is not null && after is not null)
            {
                instance.Status = after;
            }

            return Status == "DONE";
        }

        public JsonNode ToJson(string project, Uri server)
        {
            var json = new JsonObject
            {
                ["kind"] = "compute#operation",
                ["id"] = id,
                ["name"] = Name,
                ["zone"] = $"{server}compute/v1/projects/{project}/zones/{zone}",
                ["operationType"] = type,
                ["targetLink"] = $"{server}compute/v1/projects/{project}/zones/{zone}/instances/{target}",
                ["status"] = Status,
                ["progress"] = Status == "DONE" ? 100 : 0,
                ["selfLink"] = $"{server}compute/v1/projects/{project}/zones/{zone}/operations/{Name}",
            };
            if (Status == "DONE" && Error is { } error)
            {
                json["error"] = new JsonObject { ["errors"] = new JsonArray(new JsonObject { ["code"] = error.Code, ["message"] = error.Message }) };
                json["httpErrorStatusCode"] = 503;
                json["httpErrorMessage"] = "SERVICE UNAVAILABLE";
            }

            return json;
        }
    }
}
