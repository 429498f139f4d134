using System.Net;
using Platform.Provisioning.Drivers.MicroVm;
using Platform.Provisioning.Drivers.Networking;

namespace Platform.Provisioning.Tests;

/// <summary>
/// What the micro-VM tests share: the template built by build-microvm-template, a runner whose memory files and work
/// directories live in test-only places, and one snapshot, made when a test first asks for it.
/// </summary>
public sealed class MicroVmFixture : IAsyncLifetime
{
    public const string NamespacePrefix = "pmt-";
    public const string WorkRoot = "/tmp/pmt-work";
    public const string MemoryDirectory = "/dev/shm/pmt-memory";
    public const string AcceleratorCacheFile = AcceleratorCacheDirectory + "/accelerators.json";
    private const string AcceleratorCacheDirectory = "/tmp/pmt-accelerators";

    private readonly string _snapshotDirectory = "/dev/shm/pmt-snapshot-" + Guid.NewGuid().ToString("N")[..8];
    private Task<MicroVmSnapshot>? _snapshot;

    public MicroVmFixture()
    {
        var templates = Environment.GetEnvironmentVariable("PLATFORM_MICROVM_TEMPLATES");
        if (string.IsNullOrEmpty(templates))
        {
            throw new InvalidOperationException(
                "PLATFORM_MICROVM_TEMPLATES is not set: build the template with "
                + "'services/provisioning/templates/build-microvm-template /var/tmp/platform-templates' and set PLATFORM_MICROVM_TEMPLATES=/var/tmp/platform-templates.");
        }

        Template = MicroVmTemplate.Load(Path.Combine(templates, "microvm-default", "current"));
        Runner = new MicroVmRunner(AcceleratorCacheFile, memoryDirectory: MemoryDirectory);
    }

    public MicroVmTemplate Template { get; }

    public MicroVmRunner Runner { get; }

    public Task<MicroVmSnapshot> SnapshotAsync()
    {
        lock (_snapshotDirectory)
        {
            return _snapshot ??= Runner.CreateSnapshotAsync(Template, 1, 128, _snapshotDirectory, CancellationToken.None);
        }
    }

    /// <summary>A namespace with its tap, and a spec for a 128 MiB guest on it at 10.200.<paramref name="subnet"/>.2.</summary>
    public async Task<TestMachine> MachineAsync(int subnet)
    {
        var id = "pmt-" + Guid.NewGuid().ToString("N")[..10];
        var gateway = IPAddress.Parse($"10.200.{subnet}.1");
        var network = await NetworkNamespace.CreateAsync(id, "tap0", gateway, 24);
        var identity = new GuestIdentity(id, "host-" + id[4..], IPAddress.Parse($"10.200.{subnet}.2"), 24, gateway, $"52:54:00:c8:{subnet:x2}:02");
        return new TestMachine(new MicroVmSpec(id, Template, 1, 128, identity, network, Path.Combine(WorkRoot, id)));
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_snapshot is not null)
        {
            try
            {
                await _snapshot;
            }
            catch (Exception)
            {
                // The test that asked for it has reported why; only the cleanup is left.
            }
        }

        // Every test disposed its machine; what is left are the places they lived in.
        foreach (var directory in new[] { _snapshotDirectory, WorkRoot, MemoryDirectory, AcceleratorCacheDirectory }.Where(Directory.Exists))
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}

/// <summary>One test's machine: whatever VM was started for it is disposed and its namespace deleted, pass or fail.</summary>
public sealed class TestMachine(MicroVmSpec spec) : IAsyncDisposable
{
    public MicroVmSpec Spec { get; } = spec;

    public MicroVm? Vm { get; set; }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (Vm is not null)
            {
                await Vm.DisposeAsync();
            }
        }
        finally
        {
            await Spec.Network.DeleteAsync();
        }
    }
}
