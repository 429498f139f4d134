using Platform.Provisioning.Drivers.Networking;

namespace Platform.Services.Tests;

/// <summary>The test classes that forward host ports through the API (one after another, on one <see cref="PortForwardStack"/>).</summary>
[CollectionDefinition(Name)]
public sealed class PortForwardStackCollection : ICollectionFixture<PortForwardStack>
{
    public const string Name = "port forward stack";
}

/// <summary>
/// A <see cref="PlatformStack"/> whose host agent forwards from three ports of its own (different for each run, below
/// the kernel's ephemeral range and away from the driver tests' region), so that a test can hold one and use up the
/// rest. Its agent offers sandboxes, and the simulated driver for a machine outside any tenant segment. Whatever a
/// failed test left of its forwards and segments on the host goes when the stack does.
/// </summary>
public sealed class PortForwardStack : IAsyncLifetime
{
    private PlatformStack? _platform;

    public int FirstPort { get; } = 26000 + Random.Shared.Next(0, 300) * 3;

    public int LastPort => FirstPort + 2;

    public PlatformStack Platform => _platform!;

    public async Task InitializeAsync()
    {
        _platform = new PlatformStack(["sandbox", "simulated"],
            ("Platform__Agent__PortForwards__FirstPort", FirstPort.ToString()),
            ("Platform__Agent__PortForwards__LastPort", LastPort.ToString()),
            ("Platform__Agent__PortForwards__TransferNetwork", "169.254.236.0/24"));
        await _platform.InitializeAsync();
    }

    public async Task DisposeAsync()
    {
        if (_platform is null)
        {
            return;
        }

        var hostIdFile = Path.Combine(_platform.AgentStatePath, "host-id");
        var segments = File.Exists(hostIdFile) ? TenantSegment.PrefixOf(Guid.Parse(await File.ReadAllTextAsync(hostIdFile))) : null;
        await _platform.DisposeAsync();
        if (segments is null)
        {
            return;
        }

        foreach (var forward in (await PortForward.ListAsync()).Where(f => f.Segment.StartsWith(segments, StringComparison.Ordinal)))
        {
            await forward.RemoveAsync();
        }

        foreach (var segment in await NetworkNamespace.ListAsync(segments))
        {
            await TenantSegment.Open(segment).DeleteAsync();
        }
    }
}
