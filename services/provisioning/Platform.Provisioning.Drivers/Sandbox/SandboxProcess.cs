using System.Diagnostics;
using System.Text;

namespace Platform.Provisioning.Drivers.Sandbox;

/// <summary>A running sandbox. Disposing it kills what is left and removes its cgroups, whatever state it is in.</summary>
public sealed class SandboxProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Cgroups _cgroups;
    private readonly StringBuilder _output = new();
    private readonly StringBuilder _errors = new();
    private const int MaxKeptOutput = 64 * 1024;
    private readonly Task _reading;

    internal SandboxProcess(SandboxSpec spec, Process process, Cgroups cgroups)
    {
        Spec = spec;
        _process = process;
        _cgroups = cgroups;
        _reading = Task.WhenAll(CopyAsync(process.StandardOutput, _output), CopyAsync(process.StandardError, _errors));
    }

    public SandboxSpec Spec { get; }

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>
    /// A process inside the sandbox's namespaces, through which its network is entered: bubblewrap's child (bubblewrap
    /// itself stays in the host's); null before it has one or once it has ended.
    /// </summary>
    public int? InsideProcessId
    {
        get
        {
            try
            {
                var children = File.ReadAllText($"/proc/{ProcessId}/task/{ProcessId}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return children.Length > 0 ? int.Parse(children[0], System.Globalization.CultureInfo.InvariantCulture) : null;
            }
            catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
            {
                return null;
            }
        }
    }

    /// <summary>Waits for the sandbox's command to end and tells how.</summary>
    public async Task<SandboxExit> WaitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cancel.Token);
        await _reading;
        return new SandboxExit(_process.ExitCode, Output, Errors, _cgroups.WasOutOfMemory(Spec.Id), _cgroups.HitProcessLimit(Spec.Id));
    }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public string Errors
    {
        get
        {
            lock (_errors)
            {
                return _errors.ToString();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        await _cgroups.RemoveAsync(Spec.Id);
        _process.Dispose();
    }

    private static async Task CopyAsync(StreamReader reader, StringBuilder into)
    {
        var buffer = new char[4096];
        int read;
        while ((read = await reader.ReadAsync(buffer)) > 0)
        {
            lock (into)
            {
                into.Append(buffer, 0, read);
                // A machine's command may write for days: keep its latest output, not all of it.
                if (into.Length > MaxKeptOutput)
                {
                    into.Remove(0, into.Length - MaxKeptOutput);
                }
            }
        }
    }
}

/// <summary>
/// How a sandbox's command ended: <see cref="OutOfMemory"/> when the kernel killed a process for the memory
/// limit, <see cref="ProcessLimitReached"/> when it refused a fork at the process limit.
/// </summary>
public sealed record SandboxExit(int ExitCode, string Output, string Errors, bool OutOfMemory, bool ProcessLimitReached);
