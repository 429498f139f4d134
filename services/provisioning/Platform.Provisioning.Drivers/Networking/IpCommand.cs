namespace Platform.Provisioning.Drivers.Networking;

/// <summary>Runs iproute2 (<c>ip …</c>) through <see cref="HostTool"/>: an argument list, never a shell string.</summary>
public static class IpCommand
{
    /// <summary>Runs it and throws with its own words when it fails.</summary>
    public static Task RunAsync(params string[] arguments) => HostTool.RunAsync(["ip", .. arguments]);

    public static async Task<(int ExitCode, string Errors)> TryRunAsync(params string[] arguments)
    {
        var result = await HostTool.TryRunAsync(["ip", .. arguments]);
        return (result.ExitCode, result.Errors);
    }
}
