using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using Docker.DotNet;
using Docker.DotNet.Models;
using Platform.Provisioning.Drivers.Guests;

namespace Platform.Provisioning.Drivers.Container;

/// <summary>
/// The Docker Engine API (Docker.DotNet), version 1.41, over the engine's unix socket, with the platform's policy for
/// the containers it creates. It speaks to dockerd and to podman's Docker-compatible service (<c>podman system service</c>)
/// alike. Every refusal, and an engine that does not answer, is a <see cref="ContainerEngineException"/> carrying the
/// engine's own message.
/// </summary>
public sealed partial class ContainerEngine : IDisposable
{
    /// <summary>Pinned: 1.41 is what podman 4 serves and what every Docker since 20.10 accepts.</summary>
    public static readonly System.Version ApiVersion = new(1, 41);

    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Open files a container in a user namespace may have: this process's own hard limit, at most 65,536.</summary>
    private static readonly long OpenFilesLimit = Math.Min(65536, HardLimit("Max open files") ?? 1024);

    private readonly DockerClientConfiguration _configuration;
    private readonly IDockerClient _docker;

    public ContainerEngine(string socketPath)
    {
        SocketPath = socketPath;
        _configuration = new DockerClientConfiguration(new Uri("unix://" + socketPath), defaultTimeout: RequestTimeout);
        _docker = _configuration.CreateClient(ApiVersion);
    }

    public string SocketPath { get; }

    /// <summary>Answers when the engine does (<c>GET /_ping</c>); throws otherwise.</summary>
    public Task PingAsync(CancellationToken cancellationToken) =>
        CallAsync("GET /_ping", () => _docker.System.PingAsync(cancellationToken), cancellationToken);

    /// <summary>Whether the engine is podman (its <c>GET /version</c> names a "Podman Engine" component), whose <c>userns=auto</c> Docker lacks.</summary>
    public async Task<bool> IsPodmanAsync(CancellationToken cancellationToken)
    {
        var version = await CallAsync("GET /version", () => _docker.System.GetVersionAsync(cancellationToken), cancellationToken);
        return version.Components?.Any(c => c.Name?.Contains("Podman", StringComparison.OrdinalIgnoreCase) == true) == true;
    }

    /// <summary>
    /// Whether the engine can limit a container's writable layer (<c>--storage-opt size</c>): its storage driver is btrfs, zfs
    /// or devicemapper, or overlay on XFS (which must be mounted with project quotas: an engine on XFS without them refuses
    /// the limit when a container is created, with its own message). Overlay on ext4, the common case, cannot.
    /// </summary>
    public async Task<bool> LimitsWritableLayerAsync(CancellationToken cancellationToken)
    {
        var info = await CallAsync("GET /info", () => _docker.System.GetSystemInfoAsync(cancellationToken), cancellationToken);
        var backing = info.DriverStatus?.FirstOrDefault(s => s.Length == 2 && s[0] == "Backing Filesystem")?[1];
        return info.Driver switch
        {
            "btrfs" or "zfs" or "devicemapper" => true,
            "overlay" or "overlay2" => backing is "xfs",
            _ => false,
        };
    }

    /// <summary>Creates the container (not started) and returns its id.</summary>
    public async Task<string> CreateContainerAsync(ContainerSpec spec, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(spec.Limits.MemoryBytes, 6L * 1024 * 1024, nameof(spec));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(spec.Limits.Cpus, nameof(spec));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(spec.Limits.MaxProcesses, nameof(spec));
        var entry = spec.GuestAgent is { } agent ? await GuestAgentEntryAsync(spec, agent, cancellationToken) : null;
        var parameters = new CreateContainerParameters
        {
            Name = Checked(spec.Name),
            Image = spec.Image,
            Hostname = spec.Hostname,
            Entrypoint = entry?.Entrypoint,
            Cmd = entry?.Command ?? spec.Command?.ToList(),
            Labels = spec.Labels.ToDictionary(),
            HostConfig = new HostConfig
            {
                Memory = spec.Limits.MemoryBytes,
                // Equal to Memory: no swap on top (Docker's default would double the limit with swap).
                MemorySwap = spec.Limits.MemoryBytes,
                NanoCPUs = (long)Math.Round(spec.Limits.Cpus * 1_000_000_000),
                PidsLimit = spec.Limits.MaxProcesses,
                // The engine's default capabilities and seccomp profile stay; nothing in it may gain privileges by exec
                // (setuid binaries, file capabilities), and it is never privileged.
                Privileged = false,
                SecurityOpt = ["no-new-privileges"],
                UsernsMode = spec.UserNamespace,
                // In a user namespace the runtime cannot raise a limit past the engine's own hard limit: these are set
                // within it (podman's defaults are above most hosts' hard limits).
                Ulimits = spec.UserNamespace is null ? null :
                [
                    new Ulimit { Name = "nofile", Soft = OpenFilesLimit, Hard = OpenFilesLimit },
                    new Ulimit { Name = "nproc", Soft = spec.Limits.MaxProcesses, Hard = spec.Limits.MaxProcesses },
                ],
                // /tmp is a tmpfs of a quarter of its memory, charged to it: filling /tmp ends in ENOSPC, not a full engine
                // disk (the rest of its writable layer is on the engine's storage, limited only when it has a disk size).
                Tmpfs = new Dictionary<string, string> { ["/tmp"] = FormattableString.Invariant($"rw,nosuid,nodev,mode=1777,size={TmpSizeBytes(spec.Limits)}") },
                NetworkMode = spec.NetworkMode,
                CgroupParent = spec.CgroupParent,
                Binds = entry is null ? null : [$"{spec.GuestAgent}:{GuestAgent.Inside}:ro"],
                StorageOpt = spec.DiskMiB > 0 ? new Dictionary<string, string> { ["size"] = FormattableString.Invariant($"{spec.DiskMiB}M") } : null,
            },
        };
        return (await CallAsync("POST /containers/create", () => _docker.Containers.CreateContainerAsync(parameters, cancellationToken), cancellationToken)).ID;
    }

    /// <summary>
    /// The guest agent in front of what the image runs: its entrypoint and command (the spec's, or the image's) become the
    /// agent's command. None when the image runs as a user other than root (the agent could not run commands as root
    /// then), or has nothing to run.
    /// </summary>
    private async Task<(List<string> Entrypoint, List<string> Command)?> GuestAgentEntryAsync(ContainerSpec spec, string agent, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(agent);
        var image = await CallAsync($"GET /images/{spec.Image}/json", () => _docker.Images.InspectImageAsync(spec.Image, cancellationToken), cancellationToken);
        var command = spec.Command?.ToList() ?? image.Config?.Cmd?.ToList() ?? [];
        var entrypoint = image.Config?.Entrypoint?.ToList() ?? [];
        if (image.Config?.User is { Length: > 0 } user && user is not ("root" or "0" or "0:0" or "root:root") || entrypoint.Count + command.Count == 0)
        {
            return null;
        }

        return ([GuestAgent.Inside, "--socket", GuestAgent.SocketName(spec.Name), "--", .. entrypoint], command);
    }

    /// <summary>The size of a container's /tmp: a quarter of its memory, as a sandbox's.</summary>
    public static long TmpSizeBytes(ContainerLimits limits) => limits.MemoryBytes / 4;

    /// <summary>Starts it; a container running already is left as it is.</summary>
    public Task StartContainerAsync(string container, CancellationToken cancellationToken) =>
        CallAsync($"POST /containers/{Checked(container)}/start", () => _docker.Containers.StartContainerAsync(container, new ContainerStartParameters(), cancellationToken), cancellationToken);

    /// <summary>Sends its stop signal, and kills it once <paramref name="timeout"/> (whole seconds) passed; a stopped container is left as it is.</summary>
    public Task StopContainerAsync(string container, TimeSpan timeout, CancellationToken cancellationToken) =>
        CallAsync($"POST /containers/{Checked(container)}/stop", () => _docker.Containers.StopContainerAsync(container,
            new ContainerStopParameters { WaitBeforeKillSeconds = (uint)Math.Ceiling(timeout.TotalSeconds) }, cancellationToken), cancellationToken);

    /// <summary>Freezes every process of the running container (the engine's pause, the cgroup freezer).</summary>
    public Task PauseContainerAsync(string container, CancellationToken cancellationToken) =>
        CallAsync($"POST /containers/{Checked(container)}/pause", () => _docker.Containers.PauseContainerAsync(container, cancellationToken), cancellationToken);

    /// <summary>Lets the paused container's processes run again.</summary>
    public Task UnpauseContainerAsync(string container, CancellationToken cancellationToken) =>
        CallAsync($"POST /containers/{Checked(container)}/unpause", () => _docker.Containers.UnpauseContainerAsync(container, cancellationToken), cancellationToken);

    /// <summary>What the engine knows of the container; null when there is no such container.</summary>
    public async Task<ContainerInspectResponse?> InspectContainerAsync(string container, CancellationToken cancellationToken)
    {
        try
        {
            return await CallAsync($"GET /containers/{Checked(container)}/json", () => _docker.Containers.InspectContainerAsync(container, cancellationToken), cancellationToken);
        }
        catch (ContainerEngineException notFound) when (notFound.IsNotFound)
        {
            return null;
        }
    }

    /// <summary>Waits, as long as it takes, until the container is not running, and returns its exit code (at once for a container that ended).</summary>
    public async Task<int> WaitContainerAsync(string container, CancellationToken cancellationToken)
    {
        var waited = await CallAsync($"POST /containers/{Checked(container)}/wait", () => _docker.Containers.WaitContainerAsync(container, cancellationToken), cancellationToken);
        if (waited.Error?.Message is { Length: > 0 } error)
        {
            throw new ContainerEngineException($"waiting for container {container}: {error}", 200);
        }

        return (int)waited.StatusCode;
    }

    /// <summary>Removes it, killing it first if it runs when <paramref name="force"/>, with its anonymous volumes when <paramref name="volumes"/>; false when there was no such container.</summary>
    public async Task<bool> RemoveContainerAsync(string container, CancellationToken cancellationToken, bool force = true, bool volumes = true)
    {
        var parameters = new ContainerRemoveParameters { Force = force, RemoveVolumes = volumes };
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await CallAsync($"DELETE /containers/{Checked(container)}", () => _docker.Containers.RemoveContainerAsync(container, parameters, cancellationToken), cancellationToken);
                return true;
            }
            catch (ContainerEngineException notFound) when (notFound.IsNotFound)
            {
                return false;
            }
            catch (ContainerEngineException busy) when (attempt < 10 && busy.Message.Contains("resource busy", StringComparison.Ordinal))
            {
                // The engine is still unmounting what the container's last processes held (podman, in a user namespace).
                await Task.Delay(TimeSpan.FromMilliseconds(200 * attempt), cancellationToken);
            }
        }
    }

    /// <summary>Every container, running or not, that carries the label (<c>key</c> or <c>key=value</c>); every container when null.</summary>
    public async Task<IReadOnlyList<ContainerListResponse>> ListContainersAsync(string? label, CancellationToken cancellationToken)
    {
        var parameters = new ContainersListParameters
        {
            All = true,
            Filters = label is null ? null : new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [label] = true } },
        };
        return [.. await CallAsync("GET /containers/json", () => _docker.Containers.ListContainersAsync(parameters, cancellationToken), cancellationToken)];
    }

    /// <summary>One reading of what a running container uses (<c>stream=false</c>: the engine answers once).</summary>
    public async Task<ContainerStatsResponse> StatsAsync(string container, CancellationToken cancellationToken)
    {
        ContainerStatsResponse? reading = null;
        await CallAsync($"GET /containers/{Checked(container)}/stats", () => _docker.Containers.GetContainerStatsAsync(container,
            new ContainerStatsParameters { Stream = false }, new Progress(r => reading = r), cancellationToken), cancellationToken);
        return reading ?? throw new ContainerEngineException($"the container engine answered no stats for {container}", 200);
    }

    /// <summary>
    /// What it wrote, the last <paramref name="tail"/> lines (all when null), split into output and errors. A container
    /// with a TTY has one stream, which comes back as output.
    /// </summary>
    public async Task<ContainerLogs> LogsAsync(string container, int? tail, CancellationToken cancellationToken)
    {
        var inspection = await InspectContainerAsync(container, cancellationToken)
            ?? throw new ContainerEngineException($"no container {container}", 404);
        var parameters = new ContainerLogsParameters { ShowStdout = true, ShowStderr = true, Tail = tail?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "all" };
        return await CallAsync($"GET /containers/{inspection.ID}/logs", async () =>
        {
            using var stream = await _docker.Containers.GetContainerLogsAsync(inspection.ID, inspection.Config.Tty, parameters, cancellationToken);
            var (output, errors) = await stream.ReadOutputToEndAsync(cancellationToken);
            return new ContainerLogs(output, errors);
        }, cancellationToken);
    }

    /// <summary>
    /// Starts <paramref name="command"/> in the running container through the engine's exec API, with the container's own
    /// confinement (its namespaces, cgroup, capabilities, seccomp profile and no-new-privileges), no TTY, and its streams
    /// attached.
    /// </summary>
    public async Task<IGuestProcess> ExecAsync(string container, GuestCommand command, CancellationToken cancellationToken)
    {
        if (command.Problem() is { } problem)
        {
            throw new GuestException(problem);
        }

        var parameters = new ContainerExecCreateParameters
        {
            AttachStdin = true,
            AttachStdout = true,
            AttachStderr = true,
            Tty = command.Terminal is not null,
            Cmd = [.. command.Argv],
            Env = [.. command.Environment.Select(e => $"{e.Key}={e.Value}")],
            WorkingDir = command.WorkingDirectory,
            User = command.User,
        };
        var created = await CallAsync($"POST /containers/{Checked(container)}/exec", () => _docker.Exec.ExecCreateContainerAsync(container, parameters, cancellationToken), cancellationToken);
        var tty = command.Terminal is not null;
        var stream = await CallAsync($"POST /exec/{created.ID}/start", () => _docker.Exec.StartAndAttachContainerExecAsync(created.ID, tty, cancellationToken), cancellationToken);
        var process = new ContainerGuestProcess(stream, created.ID,
            id => CallAsync($"GET /exec/{id}/json", () => _docker.Exec.InspectContainerExecAsync(id, CancellationToken.None), CancellationToken.None),
            tty ? (id, size) => CallAsync($"POST /exec/{id}/resize", () => _docker.Exec.ResizeContainerExecTtyAsync(id, new ContainerResizeParameters { Width = size.Columns, Height = size.Rows }, CancellationToken.None), CancellationToken.None) : null);
        if (command.Terminal is { } initial)
        {
            // The engine's exec API takes no size at creation here: the terminal is sized just after the start, so a
            // command that looks at once may see 0x0, then gets SIGWINCH.
            process.Resize(initial);
        }

        return process;
    }

    /// <summary>
    /// What the container's main process wrote (<paramref name="query"/>: since when, its last lines), then, when
    /// following, what it writes until it ends. The engine dates each line (<c>timestamps</c>): the date is taken off the
    /// line and becomes its chunk's <see cref="LogChunk.WrittenBy"/>, and lines written by <see cref="LogQuery.Since"/>
    /// are left out (the engine's own <c>since</c> counts whole seconds).
    /// </summary>
    public async IAsyncEnumerable<LogChunk> ReadLogsAsync(string container, LogQuery query, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var parameters = new ContainerLogsParameters
        {
            ShowStdout = true,
            ShowStderr = true,
            Follow = query.Follow,
            Timestamps = true,
            Since = query.Since?.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture),
            Tail = query.TailLines?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "all",
        };
        using var stream = await CallAsync($"GET /containers/{Checked(container)}/logs", () => _docker.Containers.GetContainerLogsAsync(container, tty: false, parameters, cancellationToken), cancellationToken);
        var buffer = new byte[64 * 1024];
        var lines = new Dictionary<MultiplexedStream.TargetStream, DatedLines>();
        while (true)
        {
            MultiplexedStream.ReadResult read;
            try
            {
                read = await stream.ReadOutputAsync(buffer, 0, buffer.Length, cancellationToken);
            }
            catch (IOException)
            {
                yield break;
            }

            if (read.EOF)
            {
                yield break;
            }

            var name = read.Target == MultiplexedStream.TargetStream.StandardError ? "stderr" : "stdout";
            var dated = lines.TryGetValue(read.Target, out var known) ? known : lines[read.Target] = new DatedLines();
            foreach (var (data, writtenAt) in dated.Split(buffer.AsSpan(0, read.Count)))
            {
                if (query.Since is not { } since || writtenAt is not { } at || at > since)
                {
                    yield return new LogChunk(name, data, writtenAt);
                }
            }
        }
    }

    /// <summary>
    /// Makes an image of the container's filesystem (its image's layers and what it changed; not its bind mounts, volumes or
    /// tmpfs) tagged <paramref name="repository"/>:<paramref name="tag"/>, with the same configuration. A running container is
    /// paused while it is committed; a paused one stays paused. Returns the image's id.
    /// </summary>
    public async Task<string> CommitAsync(string container, string repository, string tag, bool paused, CancellationToken cancellationToken)
    {
        var committed = await CallAsync($"POST /commit?container={Checked(container)}", () => _docker.Images.CommitContainerChangesAsync(new CommitContainerChangesParameters
        {
            ContainerID = container,
            RepositoryName = repository,
            Tag = tag,
            Pause = !paused,
            // podman reads a body always; an empty one changes nothing of the container's configuration.
            Config = new Config(),
        }, cancellationToken), cancellationToken);
        return committed.ID;
    }

    /// <summary>Removes the image (by id or reference) unless a container uses it; false when there was no such image.</summary>
    public async Task<bool> RemoveImageAsync(string image, CancellationToken cancellationToken)
    {
        if (!ImageReference().IsMatch(image))
        {
            throw new ArgumentException($"'{image}' is not an image reference.", nameof(image));
        }

        try
        {
            await CallAsync($"DELETE /images/{image}", () => _docker.Images.DeleteImageAsync(image, new ImageDeleteParameters { Force = false }, cancellationToken), cancellationToken);
            return true;
        }
        catch (ContainerEngineException notFound) when (notFound.IsNotFound)
        {
            return false;
        }
    }

    public async Task<IReadOnlyList<ImagesListResponse>> ListImagesAsync(CancellationToken cancellationToken) =>
        [.. await CallAsync("GET /images/json", () => _docker.Images.ListImagesAsync(new ImagesListParameters(), cancellationToken), cancellationToken)];

    /// <summary>The image a reference (<c>busybox:latest</c>, <c>localhost/app:1</c>, an id) names; null when the engine holds none.</summary>
    public async Task<ImageInspectResponse?> InspectImageAsync(string reference, CancellationToken cancellationToken)
    {
        if (!ImageReference().IsMatch(reference))
        {
            throw new ArgumentException($"'{reference}' is not an image reference.", nameof(reference));
        }

        try
        {
            return await CallAsync($"GET /images/{reference}/json", () => _docker.Images.InspectImageAsync(reference, cancellationToken), cancellationToken);
        }
        catch (ContainerEngineException notFound) when (notFound.IsNotFound)
        {
            return null;
        }
    }

    public void Dispose()
    {
        _docker.Dispose();
        _configuration.Dispose();
    }

    private Task CallAsync(string request, Func<Task> call, CancellationToken cancellationToken) =>
        CallAsync(request, async () =>
        {
            await call();
            return true;
        }, cancellationToken);

    /// <summary>One call, with what went wrong said in the engine's words (its refusal) or the socket's (no answer).</summary>
    private async Task<T> CallAsync<T>(string request, Func<Task<T>> call, CancellationToken cancellationToken)
    {
        try
        {
            return await call();
        }
        catch (DockerApiException refused)
        {
            throw new ContainerEngineException(ErrorMessage(refused), (int)refused.StatusCode, refused);
        }
        catch (OperationCanceledException timedOut) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ContainerEngineException($"the container engine at {SocketPath} did not answer {request} within {RequestTimeout.TotalSeconds:0} s", null, timedOut);
        }
        catch (Exception unreachable) when (unreachable is HttpRequestException or SocketException or IOException)
        {
            // The socket's own error (refused, no such file) reads better than the HTTP one, which names the made-up host.
            var why = File.Exists(SocketPath) ? (unreachable.InnerException ?? unreachable).Message : "there is no such socket";
            throw new ContainerEngineException($"the container engine at {SocketPath} does not answer: {why}", null, unreachable);
        }
    }

    /// <summary>The engine's <c>message</c>; its body, cut short, when that is not the JSON it should be.</summary>
    private static string ErrorMessage(DockerApiException refused)
    {
        var body = refused.ResponseBody ?? "";
        try
        {
            if (JsonDocument.Parse(body).RootElement is { ValueKind: JsonValueKind.Object } error
                && error.TryGetProperty("message", out var message) && message.GetString() is { Length: > 0 } text)
            {
                return text;
            }
        }
        catch (JsonException)
        {
        }

        var trimmed = body.Trim();
        return trimmed.Length == 0 ? $"{(int)refused.StatusCode} {refused.StatusCode}" : trimmed[..Math.Min(trimmed.Length, 500)];
    }

    /// <summary>Container names and ids go into paths unescaped (Docker.DotNet does not escape them): only the characters Docker allows in them pass.</summary>
    private static string Checked(string container) =>
        ContainerName().IsMatch(container) ? container : throw new ArgumentException($"'{container}' is not a container name or id.", nameof(container));

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

    /// <summary>Takes the reading as it arrives (<see cref="System.Progress{T}"/> would post it to a thread-pool callback later).</summary>
    private sealed class Progress(Action<ContainerStatsResponse> report) : IProgress<ContainerStatsResponse>
    {
        public void Report(ContainerStatsResponse value) => report(value);
    }
}

/// <summary>
/// One stream of the engine's dated log lines (<c>2026-12-07T14:48:03.123456789Z text…</c>): each line without its date,
/// with the time it was written by. A line may come in several reads; its date is at its start.
/// </summary>
internal sealed class DatedLines
{
    private readonly List<byte> _date = [];
    private bool _inLine;
    private DateTimeOffset? _writtenAt;

    public IEnumerable<(byte[] Data, DateTimeOffset? WrittenAt)> Split(ReadOnlySpan<byte> read)
    {
        var pieces = new List<(byte[], DateTimeOffset?)>();
        while (read.Length > 0)
        {
            if (!_inLine)
            {
                var space = read.IndexOf((byte)' ');
                if (space < 0)
                {
                    _date.AddRange(read);
                    break;
                }

                _date.AddRange(read[..space]);
                var date = System.Text.Encoding.ASCII.GetString([.. _date]);
                // Docker dates to the nanosecond; podman 4 to the second, whose line may come up to a second later.
                _writtenAt = DateTimeOffset.TryParse(date, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var at)
                    ? date.Contains('.', StringComparison.Ordinal) ? at : at.AddSeconds(1)
                    : null;
                _date.Clear();
                _inLine = true;
                read = read[(space + 1)..];
            }

            var end = read.IndexOf((byte)'\n');
            var piece = end < 0 ? read : read[..(end + 1)];
            pieces.Add((piece.ToArray(), _writtenAt));
            read = read[piece.Length..];
            _inLine = end < 0;
        }

        return pieces;
    }
}
