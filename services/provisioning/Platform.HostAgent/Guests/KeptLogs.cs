using System.Globalization;
using Platform.HostAgent.Drivers;
using Platform.Provisioning.Drivers.Guests;

namespace Platform.HostAgent.Guests;

/// <summary>
/// The logs of machines that no longer run on this host, kept for <see cref="GuestOptions.LogRetention"/> after they
/// stopped: what the machine's driver had when it stopped, exited or was torn down (a sandbox's or container's main
/// process output, a micro-VM's console), the last 1 MiB of each stream, under <c>logs/</c> in the agent's state
/// directory. A machine that starts again keeps its live logs; its kept ones are replaced when it stops again.
/// </summary>
public sealed class KeptLogs
{
    /// <summary>How much of each stream is kept.</summary>
    public const int MaxBytesPerStream = 1024 * 1024;

    private const string TenantFile = "tenant";
    private const string StreamSuffix = ".log";
    private static readonly string[] StreamOrder = ["stdout", "stderr", "console"];
    private static readonly TimeSpan ReadPatience = TimeSpan.FromSeconds(5);

    private readonly string _directory;
    private readonly TimeSpan _retention;
    private readonly TimeProvider _time;
    private readonly ILogger<KeptLogs> _logger;

    public KeptLogs(AgentOptions options, TimeProvider time, ILogger<KeptLogs> logger)
    {
        _directory = Path.Combine(options.StatePath, "logs");
        _retention = options.Guests.LogRetention;
        _time = time;
        _logger = logger;
        Directory.CreateDirectory(_directory);
        Sweep();
    }

    /// <summary>Copies what <paramref name="machine"/>'s logs hold now, before its driver lets go of it; nothing for a machine without logs.</summary>
    public async Task KeepAsync(Guid machineId, Guid tenantId, IRunningMachine machine)
    {
        if (machine is not IMachineLogs logs)
        {
            return;
        }

        Sweep();
        var streams = new Dictionary<string, List<LogChunk>>();
        using var patience = new CancellationTokenSource(ReadPatience);
        try
        {
            await foreach (var chunk in logs.ReadLogsAsync(new LogQuery(), patience.Token))
            {
                if (!streams.TryGetValue(chunk.Stream, out var kept))
                {
                    streams[chunk.Stream] = kept = [];
                }

                // The reader's buffer may be reused for the next chunk.
                kept.Add(chunk with { Data = chunk.Data.ToArray() });
            }
        }
        catch (Exception exception) when (exception is OperationCanceledException or IOException or InvalidOperationException or Provisioning.Drivers.Container.ContainerEngineException)
        {
            _logger.LogWarning(exception, "The logs of machine {MachineId} could not all be kept", machineId);
        }

        var staging = Path.Combine(_directory, $".{machineId:N}.{Guid.NewGuid():N}");
        Directory.CreateDirectory(staging);
        await File.WriteAllTextAsync(Path.Combine(staging, TenantFile), tenantId.ToString());
        foreach (var (stream, kept) in streams.Where(s => StreamOrder.Contains(s.Key)))
        {
            // With the times its chunks carry: `since` reads kept logs as it reads live ones.
            await LogFiles.WriteAsync(Path.Combine(staging, stream + StreamSuffix), kept, MaxBytesPerStream, _time.GetUtcNow());
        }

        // Replaced whole: a reader sees the last stop's logs or the one before, never half of each.
        var target = DirectoryOf(machineId);
        if (Directory.Exists(target))
        {
            Directory.Delete(target, recursive: true);
        }

        Directory.Move(staging, target);
    }

    /// <summary>The kept logs of a machine of <paramref name="tenantId"/>; null when none are kept (or they are another tenant's).</summary>
    public IMachineLogs? Find(Guid machineId, Guid tenantId)
    {
        var directory = DirectoryOf(machineId);
        var tenantFile = Path.Combine(directory, TenantFile);
        try
        {
            if (!File.Exists(tenantFile) || File.ReadAllText(tenantFile).Trim() != tenantId.ToString() || Expired(directory))
            {
                return null;
            }
        }
        catch (IOException)
        {
            return null;
        }

        return new Kept(StreamOrder.Select(stream => (stream, Path.Combine(directory, stream + StreamSuffix))).Where(s => File.Exists(s.Item2)).ToList());
    }

    /// <summary>Removes the logs kept longer than the retention.</summary>
    public void Sweep()
    {
        foreach (var directory in Directory.EnumerateDirectories(_directory))
        {
            try
            {
                if (Expired(directory) || Path.GetFileName(directory).StartsWith('.'))
                {
                    Directory.Delete(directory, recursive: true);
                }
            }
            catch (IOException)
            {
                // Being replaced right now: the next sweep sees it.
            }
        }
    }

    private bool Expired(string directory) => Directory.GetLastWriteTimeUtc(directory) < _time.GetUtcNow().UtcDateTime - _retention;

    private string DirectoryOf(Guid machineId) => Path.Combine(_directory, machineId.ToString("N", CultureInfo.InvariantCulture));

    private sealed class Kept(IReadOnlyList<(string Stream, string Path)> files) : IMachineLogs
    {
        public IAsyncEnumerable<LogChunk> ReadLogsAsync(LogQuery query, CancellationToken cancellationToken) =>
            LogFiles.ReadAsync(files, query with { Follow = false }, Task.CompletedTask, cancellationToken);
    }
}
