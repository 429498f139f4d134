namespace Platform.Provisioning.Drivers.Cloud;

/// <summary>Where an instance is in its life, in the words every cloud's states map to.</summary>
public enum CloudInstanceState
{
    Pending,
    Running,
    Stopping,
    Stopped,
    Terminating,
    Terminated,
}

/// <summary>
/// One cloud instance as the drivers see it, whichever cloud runs it: its id in that cloud, where it runs (an
/// AWS region, a GCE zone, an Azure location), its state, its addresses when it has them, and the cloud's own
/// words for why it is in that state when the cloud gives them.
/// </summary>
public sealed record CloudInstance(string Id, string Location, CloudInstanceState State, string? PrivateAddress, string? PublicAddress, string? StateReason = null);

/// <summary>
/// What to create: the Platform machine it is for (its id and tenant become the instance's tags or labels), where,
/// of which instance type, from which image.
/// </summary>
public sealed record CloudInstanceSpec(Guid MachineId, Guid TenantId, string Name, string Location, string InstanceType, string Image, Guid OperationId);

/// <summary>
/// The operations every cloud offers on instances. A client finds an instance by the machine id it was tagged
/// with, so a launch repeated after a crash finds what the first one made.
/// </summary>
public interface ICloudInstances
{
    /// <summary>The live (not terminated) instance tagged with this machine id in <paramref name="location"/>, or null.</summary>
    Task<CloudInstance?> FindAsync(Guid machineId, string location, CancellationToken cancellationToken);

    /// <summary>
    /// Creates the instance and returns it as the cloud first reports it (often pending). When the cloud refuses,
    /// throws <see cref="CloudException"/>; whatever the attempt made is deleted before that.
    /// </summary>
    Task<CloudInstance> CreateAsync(CloudInstanceSpec spec, CancellationToken cancellationToken);

    /// <summary>The instance as the cloud reports it now; null when it no longer exists.</summary>
    Task<CloudInstance?> GetAsync(CloudInstance instance, CancellationToken cancellationToken);

    Task StartAsync(CloudInstance instance, CancellationToken cancellationToken);

    /// <summary>Stops it, keeping its disk (Azure deallocates it, so its compute is no longer billed).</summary>
    Task StopAsync(CloudInstance instance, CancellationToken cancellationToken);

    /// <summary>Deletes it and what was made with it. An instance that is gone already is success.</summary>
    Task DeleteAsync(CloudInstance instance, CancellationToken cancellationToken);
}

/// <summary>
/// A cloud refused or failed a request: <see cref="Code"/> is the cloud's error code
/// (<c>InsufficientInstanceCapacity</c>, <c>ZONE_RESOURCE_POOL_EXHAUSTED</c>, <c>AllocationFailed</c>), the message
/// its own words. Never carries a credential.
/// </summary>
public sealed class CloudException(string cloud, string code, string message, int? status = null, Exception? inner = null)
    : Exception($"{cloud}: {code}: {message}", inner)
{
    public string Code { get; } = code;

    /// <summary>The HTTP status the cloud answered with, when it answered.</summary>
    public int? Status { get; } = status;
}
