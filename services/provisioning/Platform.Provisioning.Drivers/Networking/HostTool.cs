using System.Diagnostics;

namespace Platform.Provisioning.Drivers.Networking;

/// <summary>What one run of a host tool said.</summary>
internal readonly record struct HostToolResult(int ExitCode, string Output, string Errors);

/// <summary>
/// Runs a host tool (nft, wg, sysctl, wireguard-go) with an argument list, never a shell string. Anything secret
/// travels on standard input: a command line is readable by every user in /proc/*/cmdline.
/// </summary>
internal static class HostTool
{
    /// <summary>The prefix that runs a tool inside a named namespace; none for this process's own.</summary>
    public static string[] In(string? networkNamespace) => networkNamespace is null ? [] : ["ip", "netns", "exec", networkNamespace];

    public static async Task<HostToolResult> TryRunAsync(IReadOnlyList<string> command, string? input = null)
    {
        // The kernel interrupts a netlink dump (ip … show) when the links or addresses change meanwhile, which
        // they do whenever anything else on the host plugs or unplugs; the answer is to ask again.
        for (var attempt = 1; ; attempt++)
        {
            var result = await RunOnceAsync(command, input);
            if (result.ExitCode == 0 || attempt == 5 || !result.Errors.Contains("Dump was interrupted", StringComparison.Ordinal))
            {
                return result;
            }
        }
    }

    private static async Task<HostToolResult> RunOnceAsync(IReadOnlyList<string> command, string? input)
    {
        var start = new ProcessStartInfo(command[0])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in command.Skip(1))
        {
            start.ArgumentList.Add(argument);
        }

        // wireguard-go hands its daemon our stdout and stderr when LOG_LEVEL is set; we would then wait for their end until the tunnel goes.
        start.Environment.Remove("LOG_LEVEL");
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        try
        {
            if (input is not null)
            {
                await process.StandardInput.WriteAsync(input);
            }

            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // It exited without reading its input; its exit code and errors say why.
        }

        await process.WaitForExitAsync();
        return new HostToolResult(process.ExitCode, await output, await errors);
    }

    /// <summary>Runs it and throws with its own words when it fails; <paramref name="secret"/> is cut out of those words.</summary>
    public static async Task<string> RunAsync(IReadOnlyList<string> command, string? input = null, string? secret = null)
    {
        var result = await TryRunAsync(command, input);
        if (result.ExitCode != 0)
        {
            // wg quotes a key it cannot parse back in its error message.
            var errors = secret is null ? result.Errors : result.Errors.Replace(secret, "(secret)", StringComparison.Ordinal);
            throw new IOException($"{string.Join(' ', command)} failed ({result.ExitCode}): {errors.Trim()}");
        }

        return result.Output;
    }
}
