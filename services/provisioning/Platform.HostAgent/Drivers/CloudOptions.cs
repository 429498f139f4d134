namespace Platform.HostAgent.Drivers;

/// <summary>What every cloud driver's settings share: how it polls, how long a launch may take, how it backs off.</summary>
public abstract class CloudOptions
{
    /// <summary>How often the driver asks its cloud for an instance's state, while launching, stopping and running.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a launch (or a stop, or a delete) may take before the driver gives up on it.</summary>
    public TimeSpan LaunchTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How often a throttled request is tried in all, and the first backoff (it doubles, with jitter).</summary>
    public int RetryAttempts { get; set; } = 6;

    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromSeconds(20);
}

/// <summary>An instance type, machine type or VM size as configured: what it gives a machine.</summary>
public sealed class InstanceTypeOptions
{
    public int Vcpus { get; set; }

    public int MemoryMiB { get; set; }
}

/// <summary>The <c>aws</c> driver's settings, section <c>Platform:Agent:Aws</c>. Credentials are not settings: see <c>docs/providers.md</c>.</summary>
public sealed class AwsOptions : CloudOptions
{
    /// <summary>The regions machines may run in; the first is the default.</summary>
    public List<string> Regions { get; set; } = [];

    /// <summary>The instance types machines may have (<c>t3.micro</c> → 2 vCPUs, 1024 MiB).</summary>
    public Dictionary<string, InstanceTypeOptions> InstanceTypes { get; set; } = [];

    /// <summary>The templates: a template name → region → AMI id.</summary>
    public Dictionary<string, Dictionary<string, string>> Images { get; set; } = [];

    /// <summary>One EC2 endpoint for every region instead of <c>https://ec2.{region}.amazonaws.com/</c> (a VPC endpoint, a test's fake).</summary>
    public string? Endpoint { get; set; }

    /// <summary>The shared-file profile to use when the environment holds no credentials (<c>AWS_PROFILE</c> wins); <c>default</c> when unset.</summary>
    public string? Profile { get; set; }
}

/// <summary>The <c>gcp</c> driver's settings, section <c>Platform:Agent:Gcp</c>.</summary>
public sealed class GcpOptions : CloudOptions
{
    public string? ProjectId { get; set; }

    /// <summary>The zones machines may run in; the first is the default.</summary>
    public List<string> Zones { get; set; } = [];

    /// <summary>The machine types machines may have (<c>e2-small</c> → 2 vCPUs, 2048 MiB).</summary>
    public Dictionary<string, InstanceTypeOptions> MachineTypes { get; set; } = [];

    /// <summary>The templates: a template name → zone → source image (<c>projects/debian-cloud/global/images/family/debian-12</c>).</summary>
    public Dictionary<string, Dictionary<string, string>> Images { get; set; } = [];

    /// <summary>The service account's JSON key; <c>GOOGLE_APPLICATION_CREDENTIALS</c> when unset.</summary>
    public string? CredentialsFile { get; set; }

    /// <summary>Compute Engine's base address; <c>https://compute.googleapis.com/compute/v1/</c> when unset.</summary>
    public string? ComputeEndpoint { get; set; }

    /// <summary>The OAuth2 token endpoint; the key's <c>token_uri</c> when unset.</summary>
    public string? TokenEndpoint { get; set; }
}

/// <summary>The <c>azure</c> driver's settings, section <c>Platform:Agent:Azure</c>.</summary>
public sealed class AzureOptions : CloudOptions
{
    public string? SubscriptionId { get; set; }

    /// <summary>The resource group the driver's VMs (and their NICs and disks) are made in; it must exist.</summary>
    public string? ResourceGroup { get; set; }

    /// <summary>The locations machines may run in; the first is the default.</summary>
    public List<string> Locations { get; set; } = [];

    /// <summary>The VM sizes machines may have (<c>Standard_B1s</c> → 1 vCPU, 1024 MiB).</summary>
    public Dictionary<string, InstanceTypeOptions> VmSizes { get; set; } = [];

    /// <summary>The templates: a template name → location → image (<c>Publisher:Offer:Sku:Version</c>, or an image resource id).</summary>
    public Dictionary<string, Dictionary<string, string>> Images { get; set; } = [];

    /// <summary>Location → the subnet resource id a VM's NIC joins.</summary>
    public Dictionary<string, string> Subnets { get; set; } = [];

    /// <summary>The VMs' administrator and the SSH public key it accepts (password login is off).</summary>
    public string AdminUsername { get; set; } = "platform";

    public string? SshPublicKey { get; set; }

    /// <summary>Azure Resource Manager's address and token audience, for a sovereign cloud or Azure Stack Hub; public Azure when unset.</summary>
    public string? ArmEndpoint { get; set; }

    public string? ArmAudience { get; set; }

    /// <summary>The Microsoft Entra authority; <c>https://login.microsoftonline.com/</c> when unset.</summary>
    public string? AuthorityHost { get; set; }

    /// <summary>A PEM certificate trusted besides the system's (Azure Stack Hub's own CA).</summary>
    public string? TrustedCertificateFile { get; set; }
}
