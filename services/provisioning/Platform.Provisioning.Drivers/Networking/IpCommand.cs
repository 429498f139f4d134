using System.Diagnostics;

namespace Platform.Provisioning.Drivers.Networking;

/// <summary>Runs iproute2 (<c>ip …</c>) with an argument list, never a shell string.</summary>
public static class IpCommand
{
    /// <summary>Runs it and throws with its own words when it fails.</summary>
    public static async Task RunAsync(params string[] arguments)
    {
        var (exitCode, errors) = await TryRunAsync(arguments);
        if (exitCode != 0)
        {
            throw new IOException($"ip {string.Join(' ', arguments)} failed: {errors.Trim()}");
        }
    }

    public static async Task<(int ExitCode, string Errors)> TryRunAsync(params string[] arguments)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        await output;
        return (process.ExitCode, await errors);
    }
}
