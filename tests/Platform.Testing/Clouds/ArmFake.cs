using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;

namespace Platform.Testing.Clouds;

/// <summary>
/// Azure Resource Manager and Microsoft Entra ID as documented, on loopback over https (Azure SDK clients send bearer
/// tokens over https only), for what the <c>azure</c> driver does: a service principal's client-credentials token,
/// a resource group's GET, and a virtual machine's create-or-update, GET (with its instance view), start, deallocate
/// and delete. Every ARM request must carry <c>api-version</c> and a bearer token this fake issued for its audience
/// (401 with <c>WWW-Authenticate</c> otherwise). Create-or-update answers 201 with <c>Azure-AsyncOperation</c>;
/// start, deallocate and delete answer 202 with <c>Azure-AsyncOperation</c> and <c>Location</c>; each operation is
/// InProgress for a few polls of either URL, then Succeeded, or Failed with <c>error.code</c>/<c>message</c>, as
/// ARM's asynchronous operation protocol documents. Errors can be injected: throttling (429 with
/// <c>Retry-After</c>), <c>AllocationFailed</c> (the create's operation fails and the VM stays, provisioning state
/// Failed, as Azure leaves it) and <c>SkuNotAvailable</c> (a synchronous 409, as Azure refuses it).
/// </summary>
public sealed partial class ArmFake : IAsyncDisposable
{
    /// <summary>Compute API versions ARM serves for virtual machines and their operations; the SDK's must be one of them.</summary>
    private static readonly string[] ComputeApiVersions = ["2021-03-01", "2021-04-01", "2021-07-01", "2021-11-01", "2022-03-01", "2022-08-01", "2022-11-01", "2023-03-01", "2023-07-01", "2024-03-01"];

    private static readonly string[] ResourcesApiVersions = ["2021-04-01", "2022-09-01", "2023-07-01"];

    private readonly ConcurrentDictionary<string, DateTimeOffset> _tokens = new();
    private readonly Dictionary<string, Vm> _vms = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, AsyncOperation> _operations = new();
    private readonly ConcurrentQueue<(DateTimeOffset At, string Request)> _requests = new();
    private readonly object _gate = new();
    private LoopbackCertificates? _certificates;
    private LoopbackServer? _server;
    private int _throttleNext;
    private (string Code, string Message)? _failNextCreate;
    private bool _refuseNextCreateForSku;

    public string TenantId { get; init; } = Guid.NewGuid().ToString();

    public string ClientId { get; init; } = Guid.NewGuid().ToString();

    /// <summary>The service principal's secret, fresh for each fake; only it is accepted.</summary>
    public string ClientSecret { get; } = "Q8~" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(27)).Replace('+', '.').Replace('/', '_');

    public string SubscriptionId { get; init; } = Guid.NewGuid().ToString();

    public string ResourceGroup { get; init; } = "platform";

    /// <summary>The token audience Resource Manager accepts (public Azure's is <c>https://management.core.windows.net/</c>).</summary>
    public string Audience { get; init; } = "https://management.platform.test/";

    public IReadOnlyList<string> Locations { get; init; } = ["westeurope", "northeurope"];

    public IReadOnlyList<string> VmSizes { get; init; } = ["Standard_B1s", "Standard_B2s"];

    /// <summary>Marketplace images as <c>Publisher:Offer:Sku</c>, any version.</summary>
    public IReadOnlyList<string> Images { get; init; } = ["Debian:debian-12:12-gen2"];

    public TimeSpan TokenLifetime { get; init; } = TimeSpan.FromHours(1);

    /// <summary>How many polls an asynchronous operation stays InProgress.</summary>
    public int PollsPerOperation { get; init; } = 2;

    /// <summary>The seconds a throttled request is told to wait (<c>Retry-After</c>).</summary>
    public int ThrottleRetryAfterSeconds { get; init; } = 1;

    /// <summary>Resource Manager's base address (the SDK's ARM environment endpoint) and Entra's (its authority host): one server.</summary>
    public Uri Endpoint => _server!.Address;

    /// <summary>The PEM file of the CA that issued the server's certificate: the driver's <c>TrustedCertificateFile</c>.</summary>
    public string TrustedCertificateFile => _certificates!.AuthorityFile;

    /// <summary>Resource ids of the subnets that exist, per location.</summary>
    public IReadOnlyDictionary<string, string> Subnets => Locations.ToDictionary(l => l,
        l => $"/subscriptions/{SubscriptionId}/resourceGroups/{ResourceGroup}/providers/Microsoft.Network/virtualNetworks/platform-{l}/subnets/default");

    public int TokensIssued => _tokens.Count;

    /// <summary>Every request as <c>METHOD /path</c> (no query), in order, refused ones included.</summary>
    public IReadOnlyList<string> Requests => _requests.Select(r => r.Request).ToArray();

    /// <summary>When each of <see cref="Requests"/> arrived.</summary>
    public IReadOnlyList<DateTimeOffset> RequestTimes => _requests.Select(r => r.At).ToArray();

    /// <summary>The virtual machines that exist now (deleted ones are gone).</summary>
    public IReadOnlyList<FakeVm> Vms
    {
        get
        {
            lock (_gate)
            {
                return _vms.Values.Select(vm => vm.Snapshot()).ToList();
            }
        }
    }

    public static async Task<ArmFake> StartAsync(Func<ArmFake>? create = null)
    {
        var fake = create?.Invoke() ?? new ArmFake();
        fake._certificates = LoopbackCertificates.Create();
        fake._server = await LoopbackServer.StartAsync(fake.HandleAsync, fake._certificates.Server);
        return fake;
    }

    /// <summary>The next <paramref name="count"/> ARM requests are answered 429 with <c>Retry-After</c>, as ARM throttles a subscription.</summary>
    public void ThrottleNext(int count) => Interlocked.Exchange(ref _throttleNext, count);

    /// <summary>The next create's operation ends Failed with <c>AllocationFailed</c>; the VM stays, Failed, until deleted.</summary>
    public void FailNextCreateForAllocation() => _failNextCreate = ("AllocationFailed",
        "Allocation failed. We do not have sufficient capacity for the requested VM size in this region. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance");

    /// <summary>The next create is refused at once with 409 <c>SkuNotAvailable</c>.</summary>
    public void RefuseNextCreateForSku() => _refuseNextCreateForSku = true;

    /// <summary>Forgets every token it issued, as if they were revoked: ARM refuses them.</summary>
    public void RevokeTokens() => _tokens.Clear();

    /// <summary>Deallocates a VM as someone would in the Azure portal.</summary>
    public void DeallocateOutside(string name)
    {
        lock (_gate)
        {
            (_vms[name].ProvisioningState, _vms[name].PowerState) = ("Succeeded", "deallocated");
        }
    }

    /// <summary>Deletes a VM as someone would in the Azure portal.</summary>
    public void DeleteOutside(string name)
    {
        lock (_gate)
        {
            _vms.Remove(name);
        }
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var path = request.Path.Value ?? "/";
        _requests.Enqueue((DateTimeOffset.UtcNow, $"{request.Method} {path}"));
        var token = TokenPath().Match(path);
        var (status, answer) = token.Success ? await TokenAsync(request, token.Groups["tenant"].Value) : await ArmAsync(context);
        context.Response.StatusCode = status;
        if (answer is not null)
        {
            context.Response.ContentType = "application/json; charset=utf-8";
            await context.Response.WriteAsync(answer.ToJsonString());
        }
    }

    private async Task<(int, JsonNode?)> ArmAsync(HttpContext context)
    {
        var (request, response) = (context.Request, context.Response);
        response.Headers["x-ms-request-id"] = Guid.NewGuid().ToString();
        if (Authenticate(request) is { } refused)
        {
            response.Headers.WWWAuthenticate = $"Bearer authorization_uri=\"{Endpoint}{TenantId}\", error=\"invalid_token\", error_description=\"{refused.Message}\"";
            return Error(401, refused.Code, refused.Message);
        }

        if (Interlocked.Decrement(ref _throttleNext) >= 0)
        {
            var kind = HttpMethods.IsGet(request.Method) ? "read" : "write";
            response.Headers.RetryAfter = ThrottleRetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
            response.Headers[$"x-ms-ratelimit-remaining-subscription-{kind}s"] = "0";
            return Error(429, "SubscriptionRequestsThrottled",
                $"Number of '{kind}' requests for subscription '{SubscriptionId}' actor '{ClientId}' exceeded. Please try again after '{ThrottleRetryAfterSeconds}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling");
        }

        var apiVersion = request.Query["api-version"].ToString();
        if (apiVersion.Length == 0)
        {
            return Error(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.");
        }

        var path = request.Path.Value ?? "/";
        var subscription = SubscriptionPath().Match(path);
        if (!subscription.Success)
        {
            return Error(404, "NotFound", $"The requested path '{path}' is not served by Resource Manager.");
        }

        if (!string.Equals(subscription.Groups["subscription"].Value, SubscriptionId, StringComparison.OrdinalIgnoreCase))
        {
            return Error(404, "SubscriptionNotFound", $"The subscription '{subscription.Groups["subscription"].Value}' could not be found.");
        }

        var rest = subscription.Groups["rest"].Value;
        if (OperationPath().Match(rest) is { Success: true } operation)
        {
            return ApiVersion(apiVersion, ComputeApiVersions, "locations/operations") ?? PollOperation(operation.Groups["id"].Value, request.Query.ContainsKey("monitor"), response);
        }

        if (GroupPath().Match(rest) is not { Success: true } group)
        {
            return Error(404, "NotFound", $"The requested path '{path}' is not served by Resource Manager.");
        }

        if (!string.Equals(group.Groups["group"].Value, ResourceGroup, StringComparison.OrdinalIgnoreCase))
        {
            return Error(404, "ResourceGroupNotFound", $"Resource group '{group.Groups["group"].Value}' could not be found.");
        }

        var resource = group.Groups["resource"].Value;
        if (resource.Length == 0)
        {
            return ApiVersion(apiVersion, ResourcesApiVersions, "resourceGroups") ?? (HttpMethods.IsGet(request.Method)
                ? (200, new JsonObject
                {
                    ["id"] = $"/subscriptions/{SubscriptionId}/resourceGroups/{ResourceGroup}",
                    ["name"] = ResourceGroup,
                    ["type"] = "Microsoft.Resources/resourceGroups",
                    ["location"] = Locations[0],
                    ["properties"] = new JsonObject { ["provisioningState"] = "Succeeded" },
                })
                : Error(405, "MethodNotAllowed", $"The resource group can only be read through this fake, not {request.Method}."));
        }

        if (VmPath().Match(resource) is not { Success: true } vm)
        {
            return Error(404, "NotFound", $"The requested path '{path}' is not served by Resource Manager.");
        }

        if (ApiVersion(apiVersion, ComputeApiVersions, "virtualMachines") is { } unsupported)
        {
            return unsupported;
        }

        var (name, action) = (vm.Groups["name"].Value, vm.Groups["action"].Value);
        JsonNode? body = null;
        if (HttpMethods.IsPut(request.Method))
        {
            try
            {
                body = await JsonNode.ParseAsync(request.Body);
            }
            catch (JsonException malformed)
            {
                return Error(400, "InvalidRequestContent", $"The request content was invalid and could not be deserialized: '{malformed.Message}'.");
            }
        }

        lock (_gate)
        {
            return (request.Method, action) switch
            {
                ("PUT", "") => CreateOrUpdate(name, body, apiVersion, response),
                ("GET", "") => WithVm(name, found => (200, found.ToJson(request.Query["$expand"] == "instanceView"))),
                ("POST", "start") => WithVm(name, found => Begin(found, "start", apiVersion, response, ("Updating", "starting"), ("Succeeded", "running"))),
                ("POST", "deallocate") => WithVm(name, found => Begin(found, "deallocate", apiVersion, response, ("Updating", "deallocating"), ("Succeeded", "deallocated"))),
                ("DELETE", "") => _vms.TryGetValue(name, out var doomed)
                    ? Begin(doomed, "delete", apiVersion, response, ("Deleting", doomed.PowerState), null)
                    : (204, null),
                _ => Error(405, "MethodNotAllowed", $"{request.Method} is not allowed on '{path}'."),
            };
        }
    }

    /// <summary>ARM's own checks of the bearer token: present, issued here, unexpired. Null when it passes.</summary>
    private (string Code, string Message)? Authenticate(HttpRequest request)
    {
        var authorization = request.Headers.Authorization.ToString();
        if (authorization.Length == 0)
        {
            return ("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.");
        }

        if (!authorization.StartsWith("Bearer ", StringComparison.Ordinal))
        {
            return ("AuthenticationFailedInvalidHeader", "Authentication failed. The 'Authorization' header is provided in an invalid format.");
        }

        if (!_tokens.TryGetValue(authorization[7..], out var expires))
        {
            return ("InvalidAuthenticationToken", "The access token is invalid.");
        }

        var now = DateTimeOffset.UtcNow;
        return expires < now
            ? ("ExpiredAuthenticationToken", $"The access token expiry UTC time '{expires.UtcDateTime:M/d/yyyy h:mm:ss tt}' is earlier than current UTC time '{now.UtcDateTime:M/d/yyyy h:mm:ss tt}'.")
            : null;
    }

    private static (int, JsonNode?)? ApiVersion(string asked, string[] served, string type) => served.Contains(asked) ? null
        : Error(400, "InvalidApiVersionParameter", $"The api-version '{asked}' is invalid for resource type '{type}'. The supported versions are '{string.Join(",", served)}'.");

    private (int, JsonNode?) CreateOrUpdate(string name, JsonNode? body, string apiVersion, HttpResponse response)
    {
        if (!VmName().IsMatch(name))
        {
            return Error(400, "InvalidResourceName", $"The resource name '{name}' is invalid. It must be 1-64 letters, digits, '-', '_' or '.', start with a letter or digit and not end with '.' or '-'.");
        }

        if (Validate(name, body) is { } invalid)
        {
            return invalid;
        }

        var location = body!["location"]!.GetValue<string>();
        var size = body["properties"]!["hardwareProfile"]!["vmSize"]!.GetValue<string>();
        if (_refuseNextCreateForSku)
        {
            _refuseNextCreateForSku = false;
            return Error(409, "SkuNotAvailable",
                $"The requested VM size for resource 'Following SKUs have failed for Capacity Restrictions: {size}' is currently not available in location '{location}'. Please try another size or deploy to a different location or zones. See https://aka.ms/azureskunotavailable for details.");
        }

        var tags = body["tags"]?.AsObject().ToDictionary(t => t.Key, t => t.Value?.GetValue<string>() ?? "") ?? [];
        if (_vms.TryGetValue(name, out var existing))
        {
            if (!string.Equals(existing.Location, location, StringComparison.OrdinalIgnoreCase))
            {
                return Error(409, "InvalidResourceLocation", $"The resource '{name}' already exists in location '{existing.Location}' in resource group '{ResourceGroup}'. A resource with the same name cannot be created in location '{location}'. Please select a new resource name.");
            }

            existing.Update(body["properties"]!.AsObject(), tags);
            var updating = Begin(existing, "update", apiVersion, response, ("Updating", existing.PowerState), ("Succeeded", existing.PowerState), withLocation: false);
            return (200, updating.Item2);
        }

        var vm = new Vm(name, $"/subscriptions/{SubscriptionId}/resourceGroups/{ResourceGroup}/providers/Microsoft.Compute/virtualMachines/{name}", location, size, body["properties"]!.AsObject(), tags);
        _vms[name] = vm;
        var failure = _failNextCreate;
        _failNextCreate = null;
        var (_, created) = Begin(vm, "create", apiVersion, response, ("Creating", "starting"), ("Succeeded", "running"), failure, withLocation: false);
        return (201, created);
    }

    /// <summary>What Azure refuses in a VM's model before creating anything, with its codes and (abridged) messages.</summary>
    private (int, JsonNode?)? Validate(string name, JsonNode? body)
    {
        var location = body?["location"]?.GetValue<string>();
        if (location is null)
        {
            return Error(400, "LocationRequired", "The location property is required for this definition.");
        }

        if (!Locations.Contains(location, StringComparer.OrdinalIgnoreCase))
        {
            return Error(400, "LocationNotAvailableForResourceType",
                $"The provided location '{location}' is not available for resource type 'Microsoft.Compute/virtualMachines'. List of available regions for the resource type is '{string.Join(",", Locations)}'.");
        }

        var properties = body!["properties"];
        var size = properties?["hardwareProfile"]?["vmSize"]?.GetValue<string>();
        if (size is null || !VmSizes.Contains(size, StringComparer.OrdinalIgnoreCase))
        {
            return Error(400, "InvalidParameter", $"The value {size} provided for the VM size is not valid. The valid sizes in the current region are: {string.Join(",", VmSizes)}.", "vmSize");
        }

        var image = properties?["storageProfile"]?["imageReference"];
        var (publisher, offer, sku) = (image?["publisher"]?.GetValue<string>(), image?["offer"]?.GetValue<string>(), image?["sku"]?.GetValue<string>());
        if (!Images.Contains($"{publisher}:{offer}:{sku}", StringComparer.OrdinalIgnoreCase))
        {
            return Error(404, "PlatformImageNotFound", $"The platform image '{publisher}:{offer}:{sku}:{image?["version"]}' is not available. Verify that all fields in the storage profile are correct.", "imageReference");
        }

        var os = properties?["osProfile"];
        var computerName = os?["computerName"]?.GetValue<string>();
        if (computerName is null || !LinuxComputerName().IsMatch(computerName) || computerName.All(char.IsAsciiDigit))
        {
            return Error(400, "InvalidParameter", @"Linux host name cannot exceed 64 characters in length or contain the following characters: ` ~ ! @ # $ % ^ & * ( ) = + _ [ ] { } \ | ; : ' "" , < > / ?.", "computerName");
        }

        if (os?["adminUsername"]?.GetValue<string>() is not { Length: > 0 })
        {
            return Error(400, "InvalidParameter", "Required parameter 'adminUsername' is missing (null).", "adminUsername");
        }

        var linux = os["linuxConfiguration"];
        var keys = linux?["ssh"]?["publicKeys"]?.AsArray() ?? [];
        var passwordOff = linux?["disablePasswordAuthentication"]?.GetValue<bool>() == true;
        if (passwordOff && keys.Count == 0)
        {
            return Error(400, "InvalidParameter", "Authentication using either SSH or by user name and password must be enabled in Linux profile.", "linuxConfiguration");
        }

        if (!passwordOff && os["adminPassword"] is null)
        {
            return Error(400, "InvalidParameter", "Required parameter 'adminPassword' is missing (null).", "adminPassword");
        }

        var network = properties?["networkProfile"];
        var nics = network?["networkInterfaceConfigurations"]?.AsArray() ?? [];
        if (nics.Count == 0 && (network?["networkInterfaces"]?.AsArray() ?? []).Count == 0)
        {
            return Error(400, "InvalidParameter", "At least one network interface is required on a virtual machine.", "networkProfile");
        }

        if (nics.Count > 0 && network?["networkApiVersion"] is null)
        {
            return Error(400, "InvalidParameter", "Network API version is required for VMs whose network interfaces are created with them (networkInterfaceConfigurations).", "networkApiVersion");
        }

        foreach (var subnet in nics.SelectMany(n => n?["properties"]?["ipConfigurations"]?.AsArray() ?? []).Select(ip => ip?["properties"]?["subnet"]?["id"]?.GetValue<string>()))
        {
            if (subnet is null || !string.Equals(Subnets.GetValueOrDefault(location), subnet, StringComparison.OrdinalIgnoreCase))
            {
                return Error(400, "InvalidResourceReference",
                    $"Resource {subnet} referenced by resource /subscriptions/{SubscriptionId}/resourceGroups/{ResourceGroup}/providers/Microsoft.Network/networkInterfaces/{name}-nic was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.");
            }
        }

        return null;
    }

    /// <summary>
    /// Starts an asynchronous operation on <paramref name="vm"/>: the VM shows <paramref name="during"/> until the
    /// operation ends, then <paramref name="after"/> (null: the VM is gone). Answered 202 with <c>Azure-AsyncOperation</c>
    /// and <c>Location</c>, or (create-or-update) with <c>Azure-AsyncOperation</c> only, and the VM as it is now.
    /// </summary>
    private (int, JsonNode?) Begin(Vm vm, string kind, string apiVersion, HttpResponse response,
        (string Provisioning, string Power) during, (string Provisioning, string Power)? after, (string Code, string Message)? failure = null, bool withLocation = true)
    {
        if (_operations.Values.FirstOrDefault(o => o.Vm == vm && o.Status == "InProgress") is { } running)
        {
            return Error(409, "OperationNotAllowed", $"Operation '{kind}' is not allowed on VM '{vm.Name}' since the VM is marked for another operation ('{running.Kind}') in progress. Retry after it completes.");
        }

        var operation = new AsyncOperation(Guid.NewGuid().ToString(), kind, vm, apiVersion, after, failure, PollsPerOperation);
        _operations[operation.Id] = operation;
        (vm.ProvisioningState, vm.PowerState) = during;
        var status = $"{Endpoint}subscriptions/{SubscriptionId}/providers/Microsoft.Compute/locations/{vm.Location}/operations/{operation.Id}?p={Guid.NewGuid()}&api-version={apiVersion}";
        response.Headers["Azure-AsyncOperation"] = status;
        if (withLocation)
        {
            response.Headers.Location = $"{Endpoint}subscriptions/{SubscriptionId}/providers/Microsoft.Compute/locations/{vm.Location}/operations/{operation.Id}?p={Guid.NewGuid()}&monitor=true&api-version={apiVersion}";
            return (202, null);
        }

        return (200, vm.ToJson(instanceView: false));
    }

    /// <summary>
    /// One poll of an operation's status (<c>Azure-AsyncOperation</c>: always 200 with its status) or of its
    /// <c>Location</c> (202 while it runs; 200 when it succeeded; the error's status and body when it failed).
    /// </summary>
    private (int, JsonNode?) PollOperation(string id, bool monitor, HttpResponse response)
    {
        lock (_gate)
        {
            if (!_operations.TryGetValue(id, out var operation))
            {
                return Error(404, "NotFound", $"The operation '{id}' was not found.");
            }

            if (operation.Advance() && operation.Status == "Succeeded" && operation.After is null)
            {
                _vms.Remove(operation.Vm.Name);
            }

            if (!monitor)
            {
                return (200, operation.ToJson());
            }

            if (operation.Status == "InProgress")
            {
                response.Headers.Location = $"{Endpoint}subscriptions/{SubscriptionId}/providers/Microsoft.Compute/locations/{operation.Vm.Location}/operations/{id}?monitor=true&api-version={operation.ApiVersion}";
                return (202, null);
            }

            return operation.Failure is { } failed ? Error(409, failed.Code, failed.Message) : (200, null);
        }
    }

    private (int, JsonNode?) WithVm(string name, Func<Vm, (int, JsonNode?)> act) => _vms.TryGetValue(name, out var vm) ? act(vm)
        : Error(404, "ResourceNotFound", $"The Resource 'Microsoft.Compute/virtualMachines/{name}' under resource group '{ResourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix");

    /// <summary>ARM's error shape.</summary>
    private static (int, JsonNode?) Error(int status, string code, string message, string? target = null)
    {
        var error = new JsonObject { ["code"] = code, ["message"] = message };
        if (target is not null)
        {
            error["target"] = target;
        }

        return (status, new JsonObject { ["error"] = error });
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        _certificates?.Dispose();
    }

    [GeneratedRegex("^/(?<tenant>[^/]+)/oauth2/v2\\.0/token$")]
    private static partial Regex TokenPath();

    [GeneratedRegex("^/subscriptions/(?<subscription>[^/]+)(?<rest>/.*)?$", RegexOptions.IgnoreCase)]
    private static partial Regex SubscriptionPath();

    [GeneratedRegex("^/providers/Microsoft\\.Compute/locations/(?<location>[^/]+)/operations/(?<id>[^/]+)$", RegexOptions.IgnoreCase)]
    private static partial Regex OperationPath();

    [GeneratedRegex("^/resourceGroups/(?<group>[^/]+)(?<resource>/.*)?$", RegexOptions.IgnoreCase)]
    private static partial Regex GroupPath();

    [GeneratedRegex("^/providers/Microsoft\\.Compute/virtualMachines/(?<name>[^/]+)(/(?<action>start|deallocate))?$", RegexOptions.IgnoreCase)]
    private static partial Regex VmPath();

    [GeneratedRegex("^[A-Za-z0-9]([A-Za-z0-9._-]{0,62}[A-Za-z0-9_])?$")]
    private static partial Regex VmName();

    [GeneratedRegex("^[A-Za-z0-9]([A-Za-z0-9.-]{0,62}[A-Za-z0-9])?$")]
    private static partial Regex LinuxComputerName();

    /// <summary>A virtual machine as a test sees it.</summary>
    public sealed record FakeVm(string Name, string Location, string VmSize, string ProvisioningState, string PowerState, IReadOnlyDictionary<string, string> Tags, JsonObject Properties);

    private sealed class Vm(string name, string id, string location, string size, JsonObject properties, Dictionary<string, string> tags)
    {
        private readonly string _vmId = Guid.NewGuid().ToString();
        private readonly DateTimeOffset _created = DateTimeOffset.UtcNow;
        private JsonObject _properties = (JsonObject)properties.DeepClone();
        private Dictionary<string, string> _tags = tags;

        public string Name => name;

        public string Location => location;

        public string ProvisioningState { get; set; } = "Creating";

        public string PowerState { get; set; } = "starting";

        public (string Code, string Message)? Failure { get; set; }

        public void Update(JsonObject properties, Dictionary<string, string> tags) => (_properties, _tags) = ((JsonObject)properties.DeepClone(), tags);

        public FakeVm Snapshot() => new(name, location, size, ProvisioningState, PowerState, new Dictionary<string, string>(_tags), (JsonObject)_properties.DeepClone());

        public JsonNode ToJson(bool instanceView)
        {
            var properties = (JsonObject)_properties.DeepClone();
            properties["vmId"] = _vmId;
            properties["provisioningState"] = ProvisioningState;
            properties["timeCreated"] = _created.ToString("O");
            if (instanceView)
            {
                var provisioning = new JsonObject
                {
                    ["code"] = Failure is { } failed ? $"ProvisioningState/failed/{failed.Code}" : $"ProvisioningState/{ProvisioningState.ToLowerInvariant()}",
                    ["level"] = Failure is null ? "Info" : "Error",
                    ["displayStatus"] = Failure is null ? $"Provisioning {ProvisioningState.ToLowerInvariant()}" : "Provisioning failed",
                    ["time"] = DateTimeOffset.UtcNow.ToString("O"),
                };
                if (Failure is { } failure)
                {
                    provisioning["message"] = failure.Message;
                }

                properties["instanceView"] = new JsonObject
                {
                    ["computerName"] = _properties["osProfile"]?["computerName"]?.DeepClone(),
                    ["statuses"] = new JsonArray(provisioning, new JsonObject { ["code"] = $"PowerState/{PowerState}", ["level"] = "Info", ["displayStatus"] = $"VM {PowerState}" }),
                };
            }

            return new JsonObject
            {
                ["name"] = name,
                ["id"] = id,
                ["type"] = "Microsoft.Compute/virtualMachines",
                ["location"] = location,
                ["tags"] = new JsonObject(_tags.Select(t => KeyValuePair.Create(t.Key, (JsonNode?)t.Value))),
                ["properties"] = properties,
            };
        }
    }

    private sealed class AsyncOperation(string id, string kind, Vm vm, string apiVersion, (string Provisioning, string Power)? after, (string Code, string Message)? failure, int polls)
    {
        private readonly DateTimeOffset _started = DateTimeOffset.UtcNow;
        private int _polls;

        public string Id => id;

        public string Kind => kind;

        public Vm Vm => vm;

        public string ApiVersion => apiVersion;

        public (string Provisioning, string Power)? After => after;

        public (string Code, string Message)? Failure => failure;

        public string Status { get; private set; } = "InProgress";

        /// <summary>One poll's worth of progress; true when this poll ended it (and the VM shows the outcome).</summary>
        public bool Advance()
        {
            if (Status != "InProgress" || ++_polls <= polls)
            {
                return false;
            }

            if (failure is { } failed)
            {
                // A failed allocation leaves the VM in place, Failed and not running, until someone deletes it.
                (Status, vm.ProvisioningState, vm.PowerState, vm.Failure) = ("Failed", "Failed", "deallocated", failed);
            }
            else
            {
                Status = "Succeeded";
                if (after is { } state)
                {
                    (vm.ProvisioningState, vm.PowerState) = state;
                }
            }

            return true;
        }

        public JsonNode ToJson()
        {
            var json = new JsonObject { ["startTime"] = _started.ToString("O"), ["status"] = Status, ["name"] = id };
            if (Status != "InProgress")
            {
                json["endTime"] = DateTimeOffset.UtcNow.ToString("O");
            }

            if (Status == "Failed" && failure is { } failed)
            {
                json["error"] = new JsonObject { ["code"] = failed.Code, ["message"] = failed.Message };
            }

            return json;
        }
    }
}
