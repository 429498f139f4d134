using System.Text.Json;
using Azure;
using Azure.Core;
using Azure.ResourceManager;
using Azure.ResourceManager.Compute;
using Azure.ResourceManager.Compute.Models;
using Azure.ResourceManager.Resources;
using Microsoft.Identity.Client;

namespace Platform.Provisioning.Drivers.Cloud.Azure;

/// <summary>
/// What the Azure client needs besides credentials: where VMs go, how they are made, and how often a long-running
/// operation is polled when Azure does not say (<c>Retry-After</c>).
/// </summary>
public sealed record AzureVmSettings(string SubscriptionId, string ResourceGroup, IReadOnlyDictionary<string, string> Subnets, string AdminUsername, string? SshPublicKey, TimeSpan PollInterval);

/// <summary>
/// Azure virtual machines through Azure.ResourceManager.Compute: create-or-update, power on, deallocate and delete
/// are long-running operations the SDK follows (<c>Azure-AsyncOperation</c>, <c>Location</c>) to their end. A VM is
/// named <c>pm-{machine id}</c>, tagged with the machine's and tenant's ids, and made with its NIC, public IP and OS
/// disk set to be deleted with it, so deleting the VM deletes all it made.
/// </summary>
public sealed class AzureVirtualMachines(ArmClient arm, AzureVmSettings settings) : ICloudInstances
{
    public const string MachineIdTag = "platform-machine-id";
    public const string TenantIdTag = "platform-tenant-id";

    public static string VmName(Guid machineId) => $"pm-{machineId:N}";

    public async Task<CloudInstance?> FindAsync(Guid machineId, string location, CancellationToken cancellationToken)
    {
        var vm = await GetVmAsync(VmName(machineId), cancellationToken);
        return vm is not null && vm.Data.Tags.TryGetValue(MachineIdTag, out var tagged) && tagged == machineId.ToString() && vm.Data.Location.Name == location
            ? InstanceOf(vm.Data) : null;
    }

    public async Task<CloudInstance> CreateAsync(CloudInstanceSpec spec, CancellationToken cancellationToken)
    {
        var name = VmName(spec.MachineId);
        if (!settings.Subnets.TryGetValue(spec.Location, out var subnet))
        {
            throw new CloudException("azure", "NoSubnet", $"no subnet is configured for {spec.Location} (Platform:Agent:Azure:Subnets)");
        }

        var data = new VirtualMachineData(new AzureLocation(spec.Location))
        {
            HardwareProfile = new VirtualMachineHardwareProfile { VmSize = new VirtualMachineSizeType(spec.InstanceType) },
            StorageProfile = new VirtualMachineStorageProfile
            {
                ImageReference = ImageOf(spec.Image),
                OSDisk = new VirtualMachineOSDisk(DiskCreateOptionType.FromImage) { DeleteOption = DiskDeleteOptionType.Delete },
            },
            OSProfile = new VirtualMachineOSProfile
            {
                ComputerName = spec.Name,
                AdminUsername = settings.AdminUsername,
                LinuxConfiguration = new LinuxConfiguration { DisablePasswordAuthentication = true },
            },
            NetworkProfile = new VirtualMachineNetworkProfile { NetworkApiVersion = NetworkApiVersion.TwoThousandTwenty1101 },
        };
        if (settings.SshPublicKey is { } key)
        {
            data.OSProfile.LinuxConfiguration.SshPublicKeys.Add(new SshPublicKeyConfiguration { Path = $"/home/{settings.AdminUsername}/.ssh/authorized_keys", KeyData = key });
        }

        var ip = new VirtualMachineNetworkInterfaceIPConfiguration("ipconfig") { SubnetId = new ResourceIdentifier(subnet), Primary = true };
        ip.PublicIPAddressConfiguration = new VirtualMachinePublicIPAddressConfiguration("public") { DeleteOption = ComputeDeleteOption.Delete };
        var nic = new VirtualMachineNetworkInterfaceConfiguration("nic") { Primary = true, DeleteOption = ComputeDeleteOption.Delete };
        nic.IPConfigurations.Add(ip);
        data.NetworkProfile.NetworkInterfaceConfigurations.Add(nic);
        data.Tags[MachineIdTag] = spec.MachineId.ToString();
        data.Tags[TenantIdTag] = spec.TenantId.ToString();

        try
        {
            var created = await Call(async () =>
            {
                var operation = await (await ResourceGroupAsync(cancellationToken)).GetVirtualMachines().CreateOrUpdateAsync(WaitUntil.Started, name, data, cancellationToken: cancellationToken);
                return (await operation.WaitForCompletionAsync(settings.PollInterval, cancellationToken)).Value;
            });
            return InstanceOf((await GetVmAsync(created.Data.Name, cancellationToken))?.Data ?? created.Data);
        }
        catch (Exception failed) when (failed is CloudException or OperationCanceledException)
        {
            // A create that failed (AllocationFailed) leaves the VM behind in state Failed, with what was made for it.
            using var cleanUp = new CancellationTokenSource(TimeSpan.FromMinutes(5));
            if (await GetVmAsync(name, cleanUp.Token) is { } made)
            {
                await DeleteAsync(InstanceOf(made.Data), cleanUp.Token);
            }

            throw;
        }
    }

    public async Task<CloudInstance?> GetAsync(CloudInstance instance, CancellationToken cancellationToken) =>
        await GetVmAsync(instance.Id, cancellationToken) is { } vm ? InstanceOf(vm.Data) : null;

    public async Task StartAsync(CloudInstance instance, CancellationToken cancellationToken) =>
        await Call(async () => await CompletedAsync(await Vm(instance).PowerOnAsync(WaitUntil.Started, cancellationToken), cancellationToken));

    public async Task StopAsync(CloudInstance instance, CancellationToken cancellationToken) =>
        await Call(async () => await CompletedAsync(await Vm(instance).DeallocateAsync(WaitUntil.Started, cancellationToken: cancellationToken), cancellationToken));

    public async Task DeleteAsync(CloudInstance instance, CancellationToken cancellationToken)
    {
        try
        {
            await Call(async () => await CompletedAsync(await Vm(instance).DeleteAsync(WaitUntil.Started, cancellationToken: cancellationToken), cancellationToken));
        }
        catch (CloudException gone) when (gone.Status == 404)
        {
        }
    }

    /// <summary>
    /// Follows a long-running operation to its end, asking every <see cref="AzureVmSettings.PollInterval"/> like the
    /// other clouds' drivers rather than on the SDK's own schedule (this SDK version never asks more often than once a
    /// second, whatever the interval).
    /// </summary>
    private async Task<Response> CompletedAsync(ArmOperation operation, CancellationToken cancellationToken) =>
        await operation.WaitForCompletionResponseAsync(settings.PollInterval, cancellationToken);

    private async Task<ResourceGroupResource> ResourceGroupAsync(CancellationToken cancellationToken) =>
        (await arm.GetSubscriptionResource(SubscriptionResource.CreateResourceIdentifier(settings.SubscriptionId)).GetResourceGroupAsync(settings.ResourceGroup, cancellationToken)).Value;

    private VirtualMachineResource Vm(CloudInstance instance) =>
        arm.GetVirtualMachineResource(VirtualMachineResource.CreateResourceIdentifier(settings.SubscriptionId, settings.ResourceGroup, instance.Id));

    private async Task<VirtualMachineResource?> GetVmAsync(string name, CancellationToken cancellationToken)
    {
        try
        {
            var id = VirtualMachineResource.CreateResourceIdentifier(settings.SubscriptionId, settings.ResourceGroup, name);
            return (await Call(async () => await arm.GetVirtualMachineResource(id).GetAsync(InstanceViewType.InstanceView, cancellationToken))).Value;
        }
        catch (CloudException missing) when (missing.Status == 404)
        {
            return null;
        }
    }

    /// <summary>
    /// The SDK's own failure, in the cloud's words: a request ARM refused (<see cref="RequestFailedException"/>, its
    /// error code and message), or a long-running operation that ended Failed (the SDK raises the same).
    /// The SDK's pipeline retries throttled requests itself, honouring <c>Retry-After</c>.
    /// </summary>
    private static async Task<T> Call<T>(Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (RequestFailedException failed)
        {
            throw new CloudException("azure", failed.ErrorCode ?? $"HTTP {failed.Status}", FirstLine(failed.Message), failed.Status, failed);
        }
        catch (global::Azure.Identity.AuthenticationFailedException failed) when (failed.InnerException is MsalServiceException { ResponseBody: { Length: > 0 } body } refused)
        {
            // Azure.Identity's own message says only that the credential failed; Entra's answer says why (AADSTS7000215: Invalid client secret…).
            var (code, description) = EntraError(body);
            throw new CloudException("azure", code ?? refused.ErrorCode, FirstLine(description ?? refused.Message), refused.StatusCode, failed);
        }
        catch (global::Azure.Identity.AuthenticationFailedException failed)
        {
            throw new CloudException("azure", "AuthenticationFailed", FirstLine(failed.InnerException?.Message ?? failed.Message), 401, failed);
        }
    }

    /// <summary>Entra's OAuth error (<c>error</c>, <c>error_description</c>) from its answer, when it is one.</summary>
    private static (string? Code, string? Description) EntraError(string body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            string? Text(string name) => json.RootElement.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
            return (Text("error"), Text("error_description"));
        }
        catch (JsonException)
        {
            return (null, null);
        }
    }

    /// <summary>The SDK's messages append the whole response (headers, content) after the first line; the first line is what the cloud said.</summary>
    private static string FirstLine(string message) => message.Split('\n', 2)[0].Trim();

    private static ImageReference ImageOf(string image) =>
        image.StartsWith('/') ? new ImageReference { Id = new ResourceIdentifier(image) }
        : image.Split(':') is [var publisher, var offer, var sku, var version] ? new ImageReference { Publisher = publisher, Offer = offer, Sku = sku, Version = version }
        : throw new CloudException("azure", "InvalidImage", $"'{image}' is neither Publisher:Offer:Sku:Version nor an image resource id");

    private static CloudInstance InstanceOf(VirtualMachineData vm)
    {
        var statuses = vm.InstanceView?.Statuses.Select(s => s.Code).ToList() ?? [];
        var power = statuses.FirstOrDefault(c => c.StartsWith("PowerState/", StringComparison.Ordinal));
        var provisioning = vm.ProvisioningState;
        var state = (provisioning, power) switch
        {
            ("Deleting", _) => CloudInstanceState.Terminating,
            ("Failed", _) => CloudInstanceState.Terminated,
            (_, "PowerState/running") => CloudInstanceState.Running,
            (_, "PowerState/stopping" or "PowerState/deallocating") => CloudInstanceState.Stopping,
            (_, "PowerState/stopped" or "PowerState/deallocated") => CloudInstanceState.Stopped,
            _ => CloudInstanceState.Pending,
        };
        var reason = vm.InstanceView?.Statuses.FirstOrDefault(s => s.Code?.StartsWith("ProvisioningState/failed", StringComparison.Ordinal) == true)?.Message;
        return new CloudInstance(vm.Name, vm.Location.Name, state, null, null, reason);
    }
}
