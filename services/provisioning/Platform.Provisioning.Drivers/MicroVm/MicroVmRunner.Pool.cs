using System.Net;
using Platform.Provisioning.Drivers.Networking;

namespace Platform.Provisioning.Drivers.MicroVm;

public sealed partial class MicroVmRunner
{
    private const string WarmPrefix = "PLATFORM-WARM ";
    private const string WarmDonePrefix = "PLATFORM-WARM-DONE ";
    private const string PoolTap = "tap0";
    // TEST-NET-1 (RFC 5737): never routed, and never a machine's address.
    private static readonly IPAddress WarmGateway = IPAddress.Parse("192.0.2.1");
    private static readonly IPAddress WarmAddress = IPAddress.Parse("192.0.2.2");

    /// <summary>
    /// Restores <paramref name="snapshot"/> into a VM kept for a machine to come, and returns once its QEMU runs, while
    /// the VM warms up (<see cref="PooledMicroVm.Warmed"/>). In a network namespace of its own (tap <c>tap0</c> at
    /// 192.0.2.1/24) the guest takes a throwaway identity (192.0.2.2), its agent answers one probe, and it drops that
    /// identity again: under TCG each QEMU translates guest code the first time it runs, so this rehearsal does for
    /// every later activation what would otherwise slow it down most. Then it idles. Until it is activated it runs
    /// only on CPU time nothing else wants (SCHED_IDLE), so that making it never slows the machines on the host. The
    /// namespace has no name by the time this returns (it ends with QEMU); <paramref name="workDirectory"/> must be
    /// new or empty. If starting or warming fails, nothing of the VM is left.
    /// </summary>
    public async Task<PooledMicroVm> RestoreWarmAsync(MicroVmSnapshot snapshot, MicroVmTemplate template, string workDirectory, CancellationToken cancellationToken)
    {
        ValidateSnapshotOf(snapshot, template, snapshot.Vcpus, snapshot.MemoryMiB, nameof(template));
        var suffix = Guid.NewGuid().ToString("N")[..12];
        var network = await NetworkNamespace.CreateAsync(PoolNamespaceOf(workDirectory), PoolTap, WarmGateway, 24);
        try
        {
            var spec = new MicroVmSpec(
                "pool-" + suffix,
                template,
                snapshot.Vcpus,
                snapshot.MemoryMiB,
                new GuestIdentity("pool-" + suffix, "pool", WarmAddress, 24, WarmGateway, "52:54:00:00:00:02"),
                network,
                workDirectory);
            Validate(spec);
            var memoryFile = MemoryFileOf(spec.Id);
            CreateWorkDirectory(spec.WorkDirectory);
            var vm = Start(spec, snapshot.Accelerator, memoryFile, Restoring(snapshot, memoryFile, background: true));
            await ReadyOrGoneAsync(vm, async token =>
            {
                // QEMU answering means it runs, so ip netns exec has put it into the namespace: the name can go.
                await vm.QmpAsync(token);
                vm.Become(vm.Spec with { Network = await network.LeaveToAsync(vm.ProcessId) });
            }, cancellationToken);
            var rehearsed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var warming = ReadyOrGoneAsync(vm, async token =>
            {
                using var serial = await ResumeAsync(vm, snapshot, token);
                var identity = vm.Spec.Identity;
                await serial.WriteLineAsync("warm " + IdentityLine(identity), token);
                await serial.WaitForLineAsync(WarmPrefix + identity.MachineId, token);
                rehearsed.SetResult();
                await ProbeAsync(vm.Spec, token);
                await serial.WriteLineAsync("warm-done", token);
                await serial.WaitForLineAsync(WarmDonePrefix + identity.MachineId, token);
            }, cancellationToken);
            // Failed warming fails the rehearsal too, if it had not come that far.
            _ = warming.ContinueWith(
                w => _ = w.IsCanceled ? rehearsed.TrySetCanceled() : rehearsed.TrySetException(w.Exception!.InnerExceptions),
                CancellationToken.None, TaskContinuationOptions.NotOnRanToCompletion, TaskScheduler.Default);
            return new PooledMicroVm(snapshot, vm, rehearsed.Task, warming);
        }
        finally
        {
            // Only a name QEMU did not get to take over is left to remove.
            await network.DeleteAsync();
        }
    }

    /// <summary>
    /// Removes what a pooled VM a process before this one started in <paramref name="workDirectory"/> left (it died while
    /// the VM warmed or waited): its QEMU, cgroup, host ids, the namespace it was warmed in, and the directory.
    /// </summary>
    public async Task RemoveLeftoverPooledAsync(string workDirectory, CancellationToken cancellationToken)
    {
        await MicroVm.RemoveLeftoverAsync(workDirectory, cancellationToken, Ids);
        await NetworkNamespace.DeleteAsync(PoolNamespaceOf(workDirectory));
    }

    /// <summary>The namespace a pooled VM is warmed in, named after its work directory so that a later process can find it.</summary>
    private static string PoolNamespaceOf(string workDirectory) =>
        "pmp-" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(Path.GetFullPath(workDirectory))))[..12];

    /// <summary>
    /// Makes <paramref name="pooled"/> the machine <paramref name="identity"/>: its namespace is named
    /// <paramref name="networkName"/> with its tap at the identity's gateway and prefix, its work directory moves to
    /// <paramref name="workDirectory"/> (new or empty), and its guest takes the identity. Returns once the guest said it
    /// is ready and its agent answered on its address; the namespace is then the caller's, as with
    /// <see cref="RestoreAsync"/>. A VM still warming stops giving way and is activated once warm. Once the arguments
    /// are found valid, <paramref name="pooled"/> is used up: on failure nothing of it is left, namespace included.
    /// </summary>
    public async Task<MicroVm> ActivateAsync(PooledMicroVm pooled, GuestIdentity identity, string networkName, string workDirectory, CancellationToken cancellationToken)
    {
        var vm = pooled.Vm;
        var spec = vm.Spec with { Id = identity.MachineId, Identity = identity, WorkDirectory = workDirectory };
        Validate(spec, identity.Gateway, identity.PrefixLength);
        if (!SafeId().IsMatch(networkName))
        {
            throw new ArgumentException("A namespace name is 1 to 64 letters, digits, '-' or '_'.", nameof(networkName));
        }

        if (!pooled.Take())
        {
            throw new InvalidOperationException($"The pooled micro-VM {vm.Id} has been activated or disposed already.");
        }

        NetworkNamespace? named = null;
        try
        {
            return await ReadyOrGoneAsync(vm, async token =>
            {
                vm.RunInForeground();
                // Failed warming has disposed of the VM already, and says why.
                await pooled.Warmed.WaitAsync(token);
                MoveWorkDirectory(vm.Spec.WorkDirectory, workDirectory);
                vm.Become(vm.Spec with { WorkDirectory = workDirectory });
                vm.MoveMemoryFile(MemoryFileOf(identity.MachineId));
                using var serial = await SerialConsole.ConnectAsync(vm.SerialSocketPath, vm.SerialLogPath, vm.Exited, token);
                await serial.WriteLineAsync(IdentityLine(identity), token);
                // The guest takes its identity while the host side changes to it.
                named = await vm.Spec.Network.NameAsync(networkName, identity.Gateway, identity.PrefixLength);
                vm.Become(spec with { Network = named });
                await WaitUntilReadyAsync(vm, serial, token);
            }, cancellationToken);
        }
        catch
        {
            if (named is not null)
            {
                await named.DeleteAsync();
            }

            throw;
        }
    }

    /// <summary>
    /// QEMU's sockets and serial log move along unnoticed: what it holds open are the files, not their paths (its pid
    /// file's path goes stale, which only matters to QEMU at exit, when it removes it). Its host ids move with them.
    /// </summary>
    private void MoveWorkDirectory(string from, string to)
    {
        CreateWorkDirectory(to);
        Directory.Delete(to);
        Ids.Move(from, to);
    }
}
