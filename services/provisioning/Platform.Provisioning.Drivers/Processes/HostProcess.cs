using System.Globalization;

namespace Platform.Provisioning.Drivers.Processes;

/// <summary>
/// A process of the host known by its pid and its start time (which tells it apart from a later process that reuses
/// the pid): how an agent watches the machines' processes it did not start itself, after it restarted. They are not its
/// children, so it cannot wait for them; it polls <c>/proc</c>.
/// </summary>
public sealed record HostProcess(int Id, ulong StartTime)
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);

    /// <summary>The process with pid <paramref name="id"/> as it runs now; null when there is none (or only its zombie).</summary>
    public static HostProcess? Find(int id) => StartTimeOf(id) is { } started && new HostProcess(id, started) is { IsRunning: true } found ? found : null;

    /// <summary>Whether it still runs (a zombie has ended).</summary>
    public bool IsRunning => StartTimeOf(Id) == StartTime && State() is not ('Z' or 'X');

    /// <summary>Its executable's file name (<c>/proc/{pid}/comm</c>); empty once it is gone.</summary>
    public string Name => Read($"/proc/{Id}/comm")?.Trim() ?? "";

    /// <summary>Its arguments, the program first; empty once it is gone.</summary>
    public IReadOnlyList<string> CommandLine => Read($"/proc/{Id}/cmdline")?.Split('\0', StringSplitOptions.RemoveEmptyEntries) ?? [];

    /// <summary>Completes once it has ended.</summary>
    public async Task WaitForExitAsync(CancellationToken cancellationToken)
    {
        while (IsRunning)
        {
            await Task.Delay(PollInterval, cancellationToken);
        }
    }

    /// <summary>SIGKILL, if it still runs.</summary>
    public void Kill()
    {
        if (IsRunning)
        {
            _ = SendSignal(Id, 9);
        }
    }

    private char? State() => Stat(Id) is { } fields ? fields[0][0] : null;

    /// <summary>Field 22 of <c>/proc/{pid}/stat</c>: clock ticks after boot at which the process started.</summary>
    private static ulong? StartTimeOf(int id) =>
        Stat(id) is { Length: > 19 } fields && ulong.TryParse(fields[19], NumberStyles.None, CultureInfo.InvariantCulture, out var started) ? started : null;

    /// <summary>The fields of <c>/proc/{pid}/stat</c> after the command name (which may hold spaces and parentheses), the state first.</summary>
    private static string[]? Stat(int id) =>
        Read($"/proc/{id}/stat") is { } stat && stat.LastIndexOf(')') is var end and > 0
            ? stat[(end + 2)..].Split(' ', StringSplitOptions.RemoveEmptyEntries)
            : null;

    private static string? Read(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);
}
