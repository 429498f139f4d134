using System.Net.Http.Json;
using System.Text.Json;
using Platform.Testing;
using Platform.Testing.Clouds;

namespace Platform.Services.Tests;

[CollectionDefinition(Name)]
public sealed class CloudStackCollection : ICollectionFixture<CloudStack>
{
    public const string Name = "cloud stack";
}

/// <summary>
/// A stack of its own whose host agent offers only the cloud drivers: <c>aws</c> against a local EC2 (its key pair
/// in the agent's environment, as an operator would set it), <c>gcp</c> against a local Compute Engine (a service
/// account key file), and <c>azure</c> against a local Resource Manager and Entra over https (a service principal
/// in the agent's environment, the fake's CA as the trusted certificate).
/// </summary>
public sealed class CloudStack : IAsyncLifetime
{
    private readonly string _gcpKeyFile = Path.Combine(Path.GetTempPath(), $"platform-gcp-key-{Guid.NewGuid():N}.json");

    public PlatformStack Stack { get; private set; } = null!;

    public Ec2Fake Ec2 { get; private set; } = null!;

    public ComputeEngineFake ComputeEngine { get; private set; } = null!;

    public ArmFake Arm { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Ec2 = await Ec2Fake.StartAsync();
        ComputeEngine = await ComputeEngineFake.StartAsync();
        await File.WriteAllTextAsync(_gcpKeyFile, ComputeEngine.KeyJson());
        Arm = await ArmFake.StartAsync();
        Stack = new PlatformStack(
            ["aws", "gcp", "azure"],
            ("AWS_ACCESS_KEY_ID", Ec2.AccessKeyId),
            ("AWS_SECRET_ACCESS_KEY", Ec2.SecretAccessKey),
            ("Platform__Agent__Aws__Endpoint", Ec2.Endpoint.ToString()),
            ("Platform__Agent__Aws__Regions__0", "us-east-1"),
            ("Platform__Agent__Aws__Regions__1", "eu-west-1"),
            ("Platform__Agent__Aws__InstanceTypes__t3.micro__Vcpus", "2"),
            ("Platform__Agent__Aws__InstanceTypes__t3.micro__MemoryMiB", "1024"),
            ("Platform__Agent__Aws__InstanceTypes__t3.large__Vcpus", "2"),
            ("Platform__Agent__Aws__InstanceTypes__t3.large__MemoryMiB", "8192"),
            ("Platform__Agent__Aws__Images__debian-12-aws__us-east-1", "ami-0a1b2c3d4e5f60001"),
            ("Platform__Agent__Aws__Images__debian-12-aws__eu-west-1", "ami-0a1b2c3d4e5f60002"),
            ("Platform__Agent__Aws__PollInterval", "00:00:00.100"),
            ("Platform__Agent__Aws__RetryBaseDelay", "00:00:00.050"),
            ("Platform__Agent__Gcp__CredentialsFile", _gcpKeyFile),
            ("Platform__Agent__Gcp__ComputeEndpoint", ComputeEngine.ComputeEndpoint.ToString()),
            ("Platform__Agent__Gcp__Zones__0", "us-central1-a"),
            ("Platform__Agent__Gcp__MachineTypes__e2-small__Vcpus", "2"),
            ("Platform__Agent__Gcp__MachineTypes__e2-small__MemoryMiB", "2048"),
            ("Platform__Agent__Gcp__Images__debian-12-gcp__us-central1-a", "projects/debian-cloud/global/images/family/debian-12"),
            ("Platform__Agent__Gcp__PollInterval", "00:00:00.100"),
            ("AZURE_TENANT_ID", Arm.TenantId),
            ("AZURE_CLIENT_ID", Arm.ClientId),
            ("AZURE_CLIENT_SECRET", Arm.ClientSecret),
            ("AZURE_CLIENT_CERTIFICATE_PATH", ""),
            ("Platform__Agent__Azure__ArmEndpoint", Arm.Endpoint.ToString()),
            ("Platform__Agent__Azure__ArmAudience", Arm.Audience),
            ("Platform__Agent__Azure__AuthorityHost", Arm.Endpoint.ToString()),
            ("Platform__Agent__Azure__TrustedCertificateFile", Arm.TrustedCertificateFile),
            ("Platform__Agent__Azure__SubscriptionId", Arm.SubscriptionId),
            ("Platform__Agent__Azure__ResourceGroup", Arm.ResourceGroup),
            ("Platform__Agent__Azure__Locations__0", "westeurope"),
            ("Platform__Agent__Azure__VmSizes__Standard_B1s__Vcpus", "1"),
            ("Platform__Agent__Azure__VmSizes__Standard_B1s__MemoryMiB", "1024"),
            ("Platform__Agent__Azure__Images__debian-12-azure__westeurope", "Debian:debian-12:12-gen2:latest"),
            ("Platform__Agent__Azure__Subnets__westeurope", Arm.Subnets["westeurope"]),
            ("Platform__Agent__Azure__SshPublicKey", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnlyNotARealKey0000000000 platform@test"),
            ("Platform__Agent__Azure__PollInterval", "00:00:00.100"));
        await Stack.InitializeAsync();
        using var admin = await Stack.AdminAsync();
        await Eventually.TrueAsync(async () => (await admin.GetFromJsonAsync<JsonElement>("/api/v1/hosts")).EnumerateArray()
            .Any(h => h.GetProperty("drivers").GetArrayLength() == 3), TimeSpan.FromSeconds(30),
            $"the cloud agent registers its three drivers; it said:\n{string.Join('\n', Output.Where(l => l.Contains("Warning") || l.Contains("Error") || l.Contains("offers")).Take(20))}");
    }

    /// <summary>Every line the stack's processes wrote, the host agent's included.</summary>
    public IEnumerable<string> Output => Stack.Output.Concat(Stack.HostAgent?.Output ?? []);

    public async Task DisposeAsync()
    {
        await Stack.DisposeAsync();
        await Ec2.DisposeAsync();
        await ComputeEngine.DisposeAsync();
        await Arm.DisposeAsync();
        File.Delete(_gcpKeyFile);
    }
}
