using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace Platform.Provisioning.Drivers.Container;

/// <summary>
/// The Docker Engine API, version 1.41, over the engine's unix socket: what the container driver needs of it and
/// no more. It speaks to dockerd and to podman's Docker-compatible service (<c>podman system service</c>) alike.
/// Every refusal is a <see cref="DockerApiException"/> carrying the engine's own message.
/// </summary>
public sealed partial class DockerClient : IDisposable
{
    /// <summary>Pinned: 1.41 is what podman 4 serves and what every Docker since 20.10 accepts.</summary>
    public const string ApiVersion = "1.41";

    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNameCaseInsensitive = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private readonly HttpClient _http;

    public DockerClient(string socketPath)
    {
        SocketPath = socketPath;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        // The host name is never resolved (the socket is the address) but HTTP/1.1 needs one; timeouts are per request.
        _http = new HttpClient(handler) { BaseAddress = new Uri("http://docker/"), Timeout = Timeout.InfiniteTimeSpan };
    }

    public string SocketPath { get; }

    /// <summary>Answers when the engine does (<c>GET /_ping</c>); throws otherwise.</summary>
    public async Task PingAsync(CancellationToken cancellationToken)
    {
        using var response = await SendAsync(HttpMethod.Get, "_ping", null, RequestTimeout, cancellationToken);
    }

    /// <summary>Open files a container in a user namespace may have: this process's own hard limit, at most 65,536.</summary>
    private static readonly long OpenFilesLimit = Math.Min(65536, HardLimit("Max open files") ?? 1024);

    /// <summary>Whether the engine is podman (its <c>GET /version</c> names a "Podman Engine" component), whose <c>userns=auto</c> Docker lacks.</summary>
    public async Task<bool> IsPodmanAsync(CancellationToken cancellationToken)
    {
        using var response = await SendAsync(HttpMethod.Get, "version", null, RequestTimeout, cancellationToken);
        var version = await ReadAsync<EngineVersion>(response, cancellationToken);
        return version.Components?.Any(c => c.Name?.Contains("Podman", StringComparison.OrdinalIgnoreCase) == true) == true;
    }

    /// <summary>Creates the container (not started) and returns its id.</summary>
    public async Task<string> CreateContainerAsync(ContainerSpec spec, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(spec.Limits.MemoryBytes, 6L * 1024 * 1024, nameof(spec));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(spec.Limits.Cpus, nameof(spec));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(spec.Limits.MaxProcesses, nameof(spec));
        var body = new
        {
            spec.Image,
            spec.Hostname,
            Cmd = spec.Command,
            spec.Labels,
            Tty = false,
            OpenStdin = false,
            AttachStdin = false,
            AttachStdout = false,
            AttachStderr = false,
            HostConfig = new
            {
                Memory = spec.Limits.MemoryBytes,
                // Equal to Memory: no swap on top (Docker's default would double the limit with swap).
                MemorySwap = spec.Limits.MemoryBytes,
                NanoCpus = (long)Math.Round(spec.Limits.Cpus * 1_000_000_000),
                PidsLimit = (long)spec.Limits.MaxProcesses,
                // The engine's default capabilities and seccomp profile stay; nothing in it may gain privileges by exec
                // (setuid binaries, file capabilities), and it is never privileged.
                Privileged = false,
                SecurityOpt = new[] { "no-new-privileges" },
                UsernsMode = spec.UserNamespace,
                // In a user namespace the runtime cannot raise a limit past the engine's own hard limit: these are set
                // within it (podman's defaults are above most hosts' hard limits).
                Ulimits = spec.UserNamespace is null ? null : new[]
                {
                    new { Name = "nofile", Soft = OpenFilesLimit, Hard = OpenFilesLimit },
                    new { Name = "nproc", Soft = (long)spec.Limits.MaxProcesses, Hard = (long)spec.Limits.MaxProcesses },
                },
                spec.NetworkMode,
                spec.CgroupParent,
            },
        };
        using var response = await SendAsync(HttpMethod.Post, $"containers/create?name={Checked(spec.Name)}", JsonContent.Create(body, options: Json), RequestTimeout, cancellationToken);
        return (await ReadAsync<CreatedContainer>(response, cancellationToken)).Id;
    }

    /// <summary>Starts it; a container running already is left as it is.</summary>
    public async Task StartContainerAsync(string container, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(HttpMethod.Post, $"containers/{Checked(container)}/start", null, RequestTimeout, cancellationToken);
    }

    /// <summary>Sends its stop signal, and kills it once <paramref name="timeout"/> (whole seconds) passed; a stopped container is left as it is.</summary>
    public async Task StopContainerAsync(string container, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var seconds = (int)Math.Ceiling(timeout.TotalSeconds);
        using var response = await SendAsync(HttpMethod.Post, $"containers/{Checked(container)}/stop?t={seconds}", null, RequestTimeout + timeout, cancellationToken);
    }

    /// <summary>What the engine knows of the container; null when there is no such container.</summary>
    public async Task<ContainerInspection?> InspectContainerAsync(string container, CancellationToken cancellationToken)
    {
        try
        {
            using var response = await SendAsync(HttpMethod.Get, $"containers/{Checked(container)}/json", null, RequestTimeout, cancellationToken);
            return await ReadAsync<ContainerInspection>(response, cancellationToken);
        }
        catch (DockerApiException notFound) when (notFound.IsNotFound)
        {
            return null;
        }
    }

    /// <summary>Waits, as long as it takes, until the container is not running, and returns its exit code (at once for a container that ended).</summary>
    public async Task<int> WaitContainerAsync(string container, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(HttpMethod.Post, $"containers/{Checked(container)}/wait", null, Timeout.InfiniteTimeSpan, cancellationToken);
        var waited = await ReadAsync<WaitedContainer>(response, cancellationToken);
        if (waited.Error?.Message is { Length: > 0 } error)
        {
            throw new DockerApiException($"waiting for container {container}: {error}", (int)response.StatusCode);
        }

        return (int)waited.StatusCode;
    }

    /// <summary>Removes it, killing it first if it runs when <paramref name="force"/>, with its anonymous volumes when <paramref name="volumes"/>; false when there was no such container.</summary>
    public async Task<bool> RemoveContainerAsync(string container, CancellationToken cancellationToken, bool force = true, bool volumes = true)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                using var response = await SendAsync(HttpMethod.Delete, $"containers/{Checked(container)}?force={Flag(force)}&v={Flag(volumes)}", null, RequestTimeout, cancellationToken);
                return true;
            }
            catch (DockerApiException notFound) when (notFound.IsNotFound)
            {
                return false;
            }
            catch (DockerApiException busy) when (attempt < 10 && busy.Message.Contains("resource busy", StringComparison.Ordinal))
            {
                // The engine is still unmounting what the container's last processes held (podman, in a user namespace).
                await Task.Delay(TimeSpan.FromMilliseconds(200 * attempt), cancellationToken);
            }
        }
    }

    /// <summary>Every container, running or not, that carries the label (<c>key</c> or <c>key=value</c>); every container when null.</summary>
    public async Task<IReadOnlyList<ContainerSummary>> ListContainersAsync(string? label, CancellationToken cancellationToken)
    {
        var filters = label is null ? "" : "&filters=" + Uri.EscapeDataString(JsonSerializer.Serialize(new Dictionary<string, string[]> { ["label"] = [label] }));
        using var response = await SendAsync(HttpMethod.Get, $"containers/json?all=true{filters}", null, RequestTimeout, cancellationToken);
        return await ReadAsync<List<ContainerSummary>>(response, cancellationToken);
    }

    /// <summary>One reading of what a running container uses (<c>stream=false</c>: the engine answers once).</summary>
    public async Task<ContainerStats> StatsAsync(string container, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(HttpMethod.Get, $"containers/{Checked(container)}/stats?stream=false", null, RequestTimeout, cancellationToken);
        return await ReadAsync<ContainerStats>(response, cancellationToken);
    }

    /// <summary>
    /// What it wrote, the last <paramref name="tail"/> lines (all when null), split into output and errors. A container
    /// with a TTY has one stream, which comes back as output.
    /// </summary>
    public async Task<ContainerLogs> LogsAsync(string container, int? tail, CancellationToken cancellationToken)
    {
        var inspection = await InspectContainerAsync(container, cancellationToken)
            ?? throw new DockerApiException($"no container {container}", 404);
        using var response = await SendAsync(HttpMethod.Get, $"containers/{inspection.Id}/logs?stdout=true&stderr=true&tail={tail?.ToString() ?? "all"}",
            null, RequestTimeout, cancellationToken);
        var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        return inspection.Config.Tty ? new ContainerLogs(System.Text.Encoding.UTF8.GetString(bytes), "") : ContainerLogs.Demultiplex(bytes);
    }

    public async Task<IReadOnlyList<ImageSummary>> ListImagesAsync(CancellationToken cancellationToken)
    {
        using var response = await SendAsync(HttpMethod.Get, "images/json", null, RequestTimeout, cancellationToken);
        return await ReadAsync<List<ImageSummary>>(response, cancellationToken);
    }

    /// <summary>The image a reference (<c>busybox:latest</c>, <c>localhost/app:1</c>, an id) names; null when the engine holds none.</summary>
    public async Task<ImageSummary?> InspectImageAsync(string reference, CancellationToken cancellationToken)
    {
        if (!ImageReference().IsMatch(reference))
        {
            throw new ArgumentException($"'{reference}' is not an image reference.", nameof(reference));
        }

        try
        {
            using var response = await SendAsync(HttpMethod.Get, $"images/{reference}/json", null, RequestTimeout, cancellationToken);
            return await ReadAsync<ImageSummary>(response, cancellationToken);
        }
        catch (DockerApiException notFound) when (notFound.IsNotFound)
        {
            return null;
        }
    }

    public void Dispose() => _http.Dispose();

    /// <summary>
    /// Sends one request to the pinned API version and returns the response once its headers arrived (the body of a
    /// wait comes when the container ends). Not modified (304: started or stopped already) counts as success.
    /// </summary>
    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, HttpContent? content, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, path == "_ping" ? path : $"v{ApiVersion}/{path}") { Content = content };
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token);
        }
        catch (HttpRequestException unreachable)
        {
            // The socket's own error (refused, no such file) reads better than the HTTP one, which names the made-up host.
            var why = File.Exists(SocketPath) ? unreachable.InnerException?.Message ?? unreachable.Message : "there is no such socket";
            throw new DockerApiException($"the container engine at {SocketPath} does not answer: {why}", null, unreachable);
        }
        catch (OperationCanceledException timedOut) when (!cancellationToken.IsCancellationRequested)
        {
            throw new DockerApiException($"the container engine at {SocketPath} did not answer {method} /{path} within {timeout.TotalSeconds:0} s", null, timedOut);
        }

        if (response.IsSuccessStatusCode || response.StatusCode == HttpStatusCode.NotModified)
        {
            return response;
        }

        using (response)
        {
            throw new DockerApiException(await ErrorMessageAsync(response, cancellationToken), (int)response.StatusCode);
        }
    }

    /// <summary>The engine's <c>message</c>; its body, cut short, when that is not the JSON it should be.</summary>
    private static async Task<string> ErrorMessageAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        try
        {
            if (JsonSerializer.Deserialize<EngineError>(body, Json)?.Message is { Length: > 0 } message)
            {
                return message;
            }
        }
        catch (JsonException)
        {
        }

        var text = body.Trim();
        return text.Length == 0 ? $"{(int)response.StatusCode} {response.ReasonPhrase}" : text[..Math.Min(text.Length, 500)];
    }

    private static async Task<T> ReadAsync<T>(HttpResponseMessage response, CancellationToken cancellationToken) =>
        await response.Content.ReadFromJsonAsync<T>(Json, cancellationToken)
        ?? throw new DockerApiException($"the container engine answered {response.RequestMessage?.RequestUri?.AbsolutePath} with null", (int)response.StatusCode);

    /// <summary>Container names and ids go into paths unescaped: only the characters Docker allows in them pass.</summary>
    private static string Checked(string container) =>
        ContainerName().IsMatch(container) ? container : throw new ArgumentException($"'{container}' is not a container name or id.", nameof(container));

    private static string Flag(bool value) => value ? "true" : "false";

    [GeneratedRegex("^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")]
    private static partial Regex ContainerName();

    // No "..": the URI would resolve it as a path segment and leave /images.
    [GeneratedRegex("^(?!.*\\.\\.)[a-zA-Z0-9][a-zA-Z0-9_.:/@-]{0,254}$")]
    private static partial Regex ImageReference();

    /// <summary>A hard limit of this process, from <c>/proc/self/limits</c>; null when it is unlimited or unknown.</summary>
    private static long? HardLimit(string name)
    {
        var line = File.ReadLines("/proc/self/limits").FirstOrDefault(l => l.StartsWith(name, StringComparison.Ordinal));
        var fields = line?[name.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return fields is { Length: >= 2 } && long.TryParse(fields[1], System.Globalization.CultureInfo.InvariantCulture, out var hard) ? hard : null;
    }

    private sealed record CreatedContainer(string Id);

    private sealed record WaitedContainer(long StatusCode, WaitError? Error);

    private sealed record WaitError(string? Message);

    private sealed record EngineError(string? Message);

    private sealed record EngineVersion(IReadOnlyList<EngineComponent>? Components);

    private sealed record EngineComponent(string? Name);
}
