using Platform.Provisioning.Drivers.Container;
using Platform.Testing;

namespace Platform.Provisioning.Tests;

/// <summary>The container tests, one after another, on one podman service of their own.</summary>
[CollectionDefinition(Name)]
public sealed class PodmanCollection : ICollectionFixture<PodmanFixture>
{
    public const string Name = "podman";
}

/// <summary>A <see cref="PodmanService"/> for the collection, and a client of its socket.</summary>
public sealed class PodmanFixture : IAsyncLifetime
{
    private PodmanService? _podman;

    public PodmanService Podman => _podman!;

    public ContainerEngine Docker { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _podman = await PodmanService.StartAsync();
        Docker = new ContainerEngine(_podman.Socket);
    }

    public async Task DisposeAsync()
    {
        Docker?.Dispose();
        if (_podman is not null)
        {
            await _podman.DisposeAsync();
        }
    }
}
