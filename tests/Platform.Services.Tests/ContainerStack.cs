using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>The test classes that run containers through the API (one after another, on one <see cref="ContainerStack"/>).</summary>
[CollectionDefinition(Name)]
public sealed class ContainerStackCollection : ICollectionFixture<ContainerStack>
{
    public const string Name = "container stack";
}

/// <summary>
/// A podman service of the tests' own, and a <see cref="PlatformStack"/> whose host agent offers only the container
/// driver, on that service's socket: the other stack's tests never depend on podman.
/// </summary>
public sealed class ContainerStack : IAsyncLifetime
{
    private PodmanService? _podman;
    private PlatformStack? _platform;

    public PodmanService Podman => _podman!;

    public PlatformStack Platform => _platform!;

    public async Task InitializeAsync()
    {
        try
        {
            _podman = await PodmanService.StartAsync();
            _platform = new PlatformStack(["container"],
                ("Platform__Agent__Container__Socket", _podman.Socket),
                ("Platform__Agent__Container__CgroupParent", _podman.CgroupParent));
            await _platform.InitializeAsync();
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    public async Task DisposeAsync()
    {
        // The agent first: stopping cleanly, it removes its containers; then the engine goes, with whatever is left.
        try
        {
            if (_platform is not null)
            {
                await _platform.DisposeAsync();
            }
        }
        finally
        {
            if (_podman is not null)
            {
                await _podman.DisposeAsync();
            }

            (_podman, _platform) = (null, null);
        }
    }
}
