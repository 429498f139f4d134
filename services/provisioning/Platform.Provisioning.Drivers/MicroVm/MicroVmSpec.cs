using Platform.Provisioning.Drivers.Networking;

namespace Platform.Provisioning.Drivers.MicroVm;

/// <summary>
/// One micro-VM: its shape (vCPUs, memory), who it is, the namespace whose tap it plugs into, and a work directory of
/// its own (QMP and serial sockets, serial log, QEMU's pid file) that the driver creates and removes.
/// </summary>
public sealed record MicroVmSpec(string Id, MicroVmTemplate Template, int Vcpus, int MemoryMiB, GuestIdentity Identity, NetworkNamespace Network, string WorkDirectory)
{
    /// <summary>
    /// The VM's disk (a raw ext4 image, <see cref="Disks.DiskImage"/>), its virtio-blk drive <c>vda</c>, which the guest runs
    /// on: its init copies the template's system onto it and changes root there, so what the guest writes to its root stays
    /// on the disk across boots. Null: the guest runs from its template's initramfs, in memory.
    /// </summary>
    public string? DiskPath { get; init; }
}
