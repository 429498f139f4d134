namespace Platform.Provisioning.Drivers.Networking;

/// <summary>Runs iproute2 (<c>ip …</c>) through <see cref="HostTool"/>: an argument list, never a shell string.</summary>
public static class IpCommand
{
    /// <summary>Runs it and throws with its own words when it fails.</summary>
    public static Task RunAsync(params string[] arguments) => HostTool.RunAsync(["ip", .. arguments]);

    /// <summary>
    /// Runs <paramref name="commands"/> in one <c>ip -n <paramref name="networkNamespace"/> -batch -</c>, in order, stopping
    /// at the first that fails (and throwing with its words): one process instead of one each. Every argument is one word.
    /// </summary>
    public static Task RunBatchAsync(string networkNamespace, params string[][] commands)
    {
        if (commands.SelectMany(c => c).FirstOrDefault(a => a.Length == 0 || a.Any(c => char.IsWhiteSpace(c) || c is '"' or '\'' or '\\' or '#')) is { } bad)
        {
            throw new ArgumentException($"'{bad}' is not one word of an ip command.", nameof(commands));
        }

        return HostTool.RunAsync(["ip", "-n", networkNamespace, "-batch", "-"], string.Join('\n', commands.Select(c => string.Join(' ', c))) + "\n");
    }

    public static async Task<(int ExitCode, string Errors)> TryRunAsync(params string[] arguments)
    {
        var result = await HostTool.TryRunAsync(["ip", .. arguments]);
        return (result.ExitCode, result.Errors);
    }
}
