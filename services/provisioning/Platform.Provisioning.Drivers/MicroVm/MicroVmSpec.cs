using Platform.Provisioning.Drivers.Networking;

namespace Platform.Provisioning.Drivers.MicroVm;

/// <summary>
/// One micro-VM: its shape (vCPUs, memory), who it is, the namespace whose tap it plugs into, and a work directory of
/// its own (QMP and serial sockets, serial log, QEMU's pid file) that the driver creates and removes.
/// </summary>
public sealed record MicroVmSpec(string Id, MicroVmTemplate Template, int Vcpus, int MemoryMiB, GuestIdentity Identity, NetworkNamespace Network, string WorkDirectory);
