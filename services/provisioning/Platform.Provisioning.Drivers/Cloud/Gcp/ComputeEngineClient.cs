using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Platform.Provisioning.Drivers.Cloud.Gcp;

/// <summary>
/// Compute Engine instances through its REST API v1: every change is a zone operation, polled until it is
/// <c>DONE</c> (and failed when it ends with an <c>error</c>). Instances are named <c>pm-{machine id}</c>, so a
/// machine has at most one per zone, and labelled with the machine's and tenant's ids.
/// </summary>
public sealed class ComputeEngineClient(HttpClient http, GoogleAccessTokens tokens, Uri computeEndpoint, string project, CloudRetry retry, TimeSpan operationPoll, TimeProvider time)
    : ICloudInstances
{
    public const string MachineIdLabel = "platform-machine-id";
    public const string TenantIdLabel = "platform-tenant-id";
    private static readonly TimeSpan CleanUpTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Compute Engine's own address.</summary>
    public static Uri PublicEndpoint { get; } = new("https://compute.googleapis.com/compute/v1/");

    public static string InstanceName(Guid machineId) => $"pm-{machineId:N}";

    public async Task<CloudInstance?> FindAsync(Guid machineId, string location, CancellationToken cancellationToken)
    {
        var instance = await GetJsonAsync(Instances(location, InstanceName(machineId)), cancellationToken);
        return instance?["labels"]?[MachineIdLabel]?.GetValue<string>() == machineId.ToString() ? InstanceOf(instance, location) : null;
    }

    public async Task<CloudInstance> CreateAsync(CloudInstanceSpec spec, CancellationToken cancellationToken)
    {
        var name = InstanceName(spec.MachineId);
        var body = new JsonObject
        {
            ["name"] = name,
            ["description"] = $"Platform machine {spec.Name}",
            ["machineType"] = $"zones/{spec.Location}/machineTypes/{spec.InstanceType}",
            ["labels"] = new JsonObject { [MachineIdLabel] = spec.MachineId.ToString(), [TenantIdLabel] = spec.TenantId.ToString() },
            ["disks"] = new JsonArray(new JsonObject
            {
                ["boot"] = true,
                ["autoDelete"] = true,
                ["initializeParams"] = new JsonObject { ["sourceImage"] = spec.Image, ["labels"] = new JsonObject { [MachineIdLabel] = spec.MachineId.ToString(), [TenantIdLabel] = spec.TenantId.ToString() } },
            }),
            ["networkInterfaces"] = new JsonArray(new JsonObject
            {
                ["network"] = "global/networks/default",
                ["accessConfigs"] = new JsonArray(new JsonObject { ["type"] = "ONE_TO_ONE_NAT", ["name"] = "External NAT" }),
            }),
        };
        try
        {
            await RunOperationAsync(HttpMethod.Post, Instances(spec.Location, null), body, cancellationToken);
            return InstanceOf(await GetJsonAsync(Instances(spec.Location, name), cancellationToken)
                ?? throw new CloudException("gcp", "notFound", $"instance {name} is not there after its insert operation completed"), spec.Location);
        }
        catch (Exception failed) when (failed is HttpRequestException or OperationCanceledException || failed is CloudException { Code: not "alreadyExists" })
        {
            // An insert that failed in its operation, or whose answer was lost or abandoned, may have left the instance behind.
            using var cleanUp = new CancellationTokenSource(CleanUpTimeout);
            if (await GetJsonAsync(Instances(spec.Location, name), cleanUp.Token) is { } made)
            {
                await DeleteAsync(InstanceOf(made, spec.Location), cleanUp.Token);
            }

            throw;
        }
    }

    public async Task<CloudInstance?> GetAsync(CloudInstance instance, CancellationToken cancellationToken) =>
        await GetJsonAsync(Instances(instance.Location, instance.Id), cancellationToken) is { } found ? InstanceOf(found, instance.Location) : null;

    public Task StartAsync(CloudInstance instance, CancellationToken cancellationToken) =>
        RunOperationAsync(HttpMethod.Post, Instances(instance.Location, instance.Id + "/start"), null, cancellationToken);

    public Task StopAsync(CloudInstance instance, CancellationToken cancellationToken) =>
        RunOperationAsync(HttpMethod.Post, Instances(instance.Location, instance.Id + "/stop"), null, cancellationToken);

    public async Task DeleteAsync(CloudInstance instance, CancellationToken cancellationToken)
    {
        try
        {
            await RunOperationAsync(HttpMethod.Delete, Instances(instance.Location, instance.Id), null, cancellationToken);
        }
        catch (CloudException gone) when (gone.Status == 404)
        {
        }
    }

    private Uri Instances(string zone, string? rest) =>
        new(computeEndpoint, $"projects/{Uri.EscapeDataString(project)}/zones/{Uri.EscapeDataString(zone)}/instances{(rest is null ? "" : "/" + rest)}");

    /// <summary>Sends the change and polls its zone operation until it is <c>DONE</c>; an operation that ends with errors throws the first.</summary>
    private async Task RunOperationAsync(HttpMethod method, Uri address, JsonObject? body, CancellationToken cancellationToken)
    {
        var operation = (await SendAsync(method, address, body, cancellationToken))!;
        while (operation["status"]?.GetValue<string>() != "DONE")
        {
            await Task.Delay(operationPoll, time, cancellationToken);
            var self = operation["selfLink"]?.GetValue<string>() is { } link ? new Uri(link)
                : new Uri(computeEndpoint, $"projects/{Uri.EscapeDataString(project)}/zones/{ZoneOf(operation)}/operations/{operation["name"]!.GetValue<string>()}");
            operation = (await SendAsync(HttpMethod.Get, self, null, cancellationToken))!;
        }

        if (operation["error"]?["errors"]?.AsArray().FirstOrDefault() is { } error)
        {
            throw new CloudException("gcp", error["code"]?.GetValue<string>() ?? "operationFailed", error["message"]?.GetValue<string>() ?? "the operation failed",
                operation["httpErrorStatusCode"]?.GetValue<int>());
        }
    }

    private static string ZoneOf(JsonNode operation) => operation["zone"]?.GetValue<string>().Split('/')[^1] ?? "";

    private async Task<JsonNode?> GetJsonAsync(Uri address, CancellationToken cancellationToken)
    {
        try
        {
            return await SendAsync(HttpMethod.Get, address, null, cancellationToken);
        }
        catch (CloudException missing) when (missing.Status == 404)
        {
            return null;
        }
    }

    private Task<JsonNode?> SendAsync(HttpMethod method, Uri address, JsonObject? body, CancellationToken cancellationToken) =>
        retry.RunAsync(token => SendOnceAsync(method, address, body, token), refused => refused.Status is 429 or 500 or 502 or 503
            || refused.Code is "rateLimitExceeded" or "userRateLimitExceeded", cancellationToken);

    private async Task<JsonNode?> SendOnceAsync(HttpMethod method, Uri address, JsonObject? body, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, address) { Content = body is null ? null : JsonContent.Create(body) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await tokens.GetAsync(cancellationToken));
        using var response = await http.SendAsync(request, cancellationToken);
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        if (response.IsSuccessStatusCode)
        {
            return text.Length == 0 ? null : JsonNode.Parse(text);
        }

        if (response.StatusCode == HttpStatusCode.Unauthorized)
        {
            tokens.Forget();
        }

        // Google's error shape: {"error": {"code", "message", "status", "errors": [{"reason", "message", "domain"}]}}.
        JsonNode? error = null;
        try
        {
            error = JsonNode.Parse(text)?["error"];
        }
        catch (JsonException)
        {
        }

        var reason = error?["errors"]?.AsArray().FirstOrDefault()?["reason"]?.GetValue<string>() ?? error?["status"]?.GetValue<string>() ?? $"HTTP {(int)response.StatusCode}";
        throw new CloudException("gcp", reason, error?["message"]?.GetValue<string>() ?? (text.Length > 200 ? text[..200] : text), (int)response.StatusCode);
    }

    private static CloudInstance InstanceOf(JsonNode instance, string zone)
    {
        var network = instance["networkInterfaces"]?.AsArray().FirstOrDefault();
        return new CloudInstance(
            instance["name"]!.GetValue<string>(),
            zone,
            instance["status"]?.GetValue<string>() switch
            {
                "PROVISIONING" or "STAGING" or "REPAIRING" => CloudInstanceState.Pending,
                "RUNNING" => CloudInstanceState.Running,
                "STOPPING" or "SUSPENDING" => CloudInstanceState.Stopping,
                // TERMINATED is Compute Engine's word for stopped: the instance and its disk remain.
                _ => CloudInstanceState.Stopped,
            },
            network?["networkIP"]?.GetValue<string>(),
            network?["accessConfigs"]?.AsArray().FirstOrDefault()?["natIP"]?.GetValue<string>(),
            instance["statusMessage"]?.GetValue<string>());
    }
}
