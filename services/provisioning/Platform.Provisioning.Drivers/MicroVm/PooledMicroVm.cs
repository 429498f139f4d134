namespace Platform.Provisioning.Drivers.MicroVm;

/// <summary>
/// A micro-VM restored from a snapshot and warming or warmed (<see cref="MicroVmRunner.RestoreWarmAsync"/>), without
/// an identity: a machine to be, once <see cref="MicroVmRunner.ActivateAsync"/> gives it one. Its network namespace
/// has no name and is held by its QEMU alone, so it ends with QEMU. Disposing it before it is activated kills QEMU and
/// removes its work directory; once activated, the VM is the activation's and disposing this does nothing.
/// </summary>
public sealed class PooledMicroVm : IAsyncDisposable
{
    private int _taken;

    internal PooledMicroVm(MicroVmSnapshot snapshot, MicroVm vm, Task rehearsed, Task warmed)
    {
        Snapshot = snapshot;
        Vm = vm;
        Rehearsed = rehearsed;
        Warmed = warmed;
    }

    public MicroVmSnapshot Snapshot { get; }

    public int ProcessId => Vm.ProcessId;

    public string WorkDirectory => Vm.Spec.WorkDirectory;

    /// <summary>
    /// Completes once the guest has taken its throwaway identity, most of warming; what is left (one probe, dropping
    /// the identity) is short, so activating it from then on is quicker than restoring another VM. Fails as
    /// <see cref="Warmed"/> does if warming fails before.
    /// </summary>
    public Task Rehearsed { get; }

    /// <summary>
    /// Completes when the VM is warm and idles, waiting for its identity; fails (<see cref="MicroVmException"/>, or
    /// cancelled with the token it was restored with) if it could not be warmed, and then nothing of it is left.
    /// </summary>
    public Task Warmed { get; }

    /// <summary>Completes when QEMU has exited: a pooled VM that did cannot be activated.</summary>
    public Task<MicroVmExit> Exited => Vm.Exited;

    internal MicroVm Vm { get; }

    /// <summary>True for the one caller that gets to activate (or dispose) it.</summary>
    internal bool Take() => Interlocked.Exchange(ref _taken, 1) == 0;

    public ValueTask DisposeAsync() => Take() ? Vm.DisposeAsync() : ValueTask.CompletedTask;
}
