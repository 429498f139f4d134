namespace Platform.Provisioning.Drivers.MicroVm;

/// <summary>A micro-VM did not come up: QEMU failed or exited, or the guest was not ready in time. Nothing of it is left.</summary>
public sealed class MicroVmException(string message, string serialTail, Exception? innerException = null)
    : Exception(serialTail.Length == 0 ? message : $"{message}\n--- serial console (last lines) ---\n{serialTail}", innerException)
{
    public string SerialTail { get; } = serialTail;
}
