using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Platform.Testing;

/// <summary>
/// A real service host started as its own OS process from the build output, as <c>./platform up</c> starts
/// it: tests can kill it with SIGKILL mid-flow and start it again. It listens on a port the OS picks.
/// </summary>
public sealed partial class ServiceProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ServiceProcess(string service, Process process)
    {
        Service = service;
        _process = process;
    }

    /// <summary>The credential the test's gateway and services share (what <c>./platform up</c> generates per instance).</summary>
    public static string InternalToken { get; } = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24));

    public string Service { get; }

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>Everything the process wrote to stdout and stderr so far, a line each.</summary>
    public IReadOnlyList<string> Output => _output.ToArray();

    /// <summary>The address it listens on, once Kestrel has said so.</summary>
    public Task<Uri> Address => _listening.Task;

    public static ServiceProcess Start(string service, IReadOnlyDictionary<string, string> environment)
    {
        // The host agent lives with provisioning, whose driver it runs; every other service has its own folder.
        var (folder, name) = service == "host-agent" ? ("provisioning", "Platform.HostAgent") : (service, "Platform." + char.ToUpperInvariant(service[0]) + service[1..]);
        var directory = System.IO.Path.Combine(RepositoryRoot.Path, "services", folder, name);
        var dll = System.IO.Path.Combine(directory, "bin", RepositoryRoot.Configuration, "net10.0", name + ".dll");
        if (!File.Exists(dll))
        {
            throw new FileNotFoundException($"{dll} is not built: build Platform.sln in {RepositoryRoot.Configuration} first.");
        }

        var start = new ProcessStartInfo("dotnet", [dll])
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["ASPNETCORE_URLS"] = "http://127.0.0.1:0";
        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        start.Environment["Platform__InternalToken"] = InternalToken;
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var started = new ServiceProcess(service, process);
        process.OutputDataReceived += (_, line) => started.Receive(line.Data);
        process.ErrorDataReceived += (_, line) => started.Receive(line.Data);
        process.Exited += (_, _) => started._listening.TrySetException(new InvalidOperationException($"{service} exited with {process.ExitCode} before listening:\n{string.Join('\n', started.Output.TakeLast(20))}"));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return started;
    }

    public async Task<Uri> WaitUntilListeningAsync(TimeSpan? timeout = null) =>
        await Address.WaitAsync(timeout ?? TimeSpan.FromSeconds(60));

    /// <summary>Waits until <c>/health/ready</c> answers 200.</summary>
    public async Task<Uri> WaitUntilReadyAsync(TimeSpan? timeout = null)
    {
        var patience = timeout ?? TimeSpan.FromSeconds(60);
        var address = await WaitUntilListeningAsync(patience);
        using var client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(5) };
        await Eventually.TrueAsync(async () =>
        {
            try
            {
                return (await client.GetAsync("/health/ready")).IsSuccessStatusCode;
            }
            catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException)
            {
                // Not listening yet, or too busy starting to answer within the client's timeout (a loaded host): ask again.
                return false;
            }
        }, patience, $"{Service} becomes ready");
        return address;
    }

    /// <summary>A client that calls the service directly, as the gateway does: with the internal credential and no caller.</summary>
    public async Task<HttpClient> CreateGatewayLikeClientAsync()
    {
        var client = new HttpClient { BaseAddress = await WaitUntilListeningAsync() };
        client.DefaultRequestHeaders.Add("X-Platform-Internal-Token", InternalToken);
        return client;
    }

    /// <summary>
    /// SIGKILL: no shutdown hooks, no flushing; what a crash looks like. By default its children go too; a
    /// crash of the process alone leaves them running, as a crashed host agent leaves its machines.
    /// </summary>
    public async Task KillAsync(bool entireProcessTree = true)
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree);
        }

        await _process.WaitForExitAsync();
    }

    /// <summary>SIGTERM, as <c>./platform down</c> stops a service: it shuts down cleanly, or is killed after <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (!_process.HasExited && Terminate(_process.Id, 15) == 0)
        {
            using var patience = new CancellationTokenSource(grace);
            try
            {
                await _process.WaitForExitAsync(patience.Token);
            }
            catch (OperationCanceledException)
            {
                // It did not stop in time: a kill below, as ./platform down does.
            }
        }

        await KillAsync();
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Terminate(int pid, int signal);

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cancel.Token);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process.Dispose();
    }

    private void Receive(string? line)
    {
        if (line is null)
        {
            return;
        }

        _output.Enqueue(line);
        if (ListeningOn().Match(line) is { Success: true } match)
        {
            _listening.TrySetResult(new Uri(match.Groups[1].Value));
        }
    }

    [GeneratedRegex("Now listening on: (http://[0-9.:]+)")]
    private static partial Regex ListeningOn();
}
