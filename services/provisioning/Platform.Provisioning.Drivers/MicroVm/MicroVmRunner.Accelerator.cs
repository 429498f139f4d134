using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;

namespace Platform.Provisioning.Drivers.MicroVm;

public sealed partial class MicroVmRunner
{
    /// <summary>The work directories of KVM trial boots, beside the accelerator cache.</summary>
    public const string KvmProbePrefix = "kvm-probe-";

    private readonly Dictionary<string, Task<string>> _accelerators = [];

    /// <summary>
    /// "kvm" if a trial boot of <paramref name="template"/> under KVM reaches ready in time, else "tcg". A /dev/kvm is
    /// not proof: paravirtual backends (PVM) offer one on which stock kernels abort or hang. Tried once per QEMU
    /// binary and kernel, and remembered in the cache file.
    /// </summary>
    public Task<string> DetectAcceleratorAsync(MicroVmTemplate template, CancellationToken cancellationToken)
    {
        if (!File.Exists("/dev/kvm"))
        {
            return Task.FromResult("tcg");
        }

        Task<string> detection;
        lock (_accelerators)
        {
            if (!_accelerators.TryGetValue(template.KernelPath, out detection!) || detection.IsFaulted)
            {
                // Shared by every caller, so no single caller's cancellation may stop it; it is bounded by its own timeout.
                detection = Task.Run(() => RememberedOrProbedAsync(template));
                _accelerators[template.KernelPath] = detection;
            }
        }

        return detection.WaitAsync(cancellationToken);
    }

    private async Task<string> RememberedOrProbedAsync(MicroVmTemplate template)
    {
        // Another QEMU or another kernel may fare differently: an upgrade of either is tried afresh.
        var binary = new FileInfo(qemu);
        string kernelHash;
        await using (var kernel = File.OpenRead(template.KernelPath))
        {
            kernelHash = Convert.ToHexStringLower(await SHA256.HashDataAsync(kernel));
        }

        var key = $"{binary.FullName}|{binary.Length}|{binary.LastWriteTimeUtc.Ticks}|kernel-sha256:{kernelHash}";
        var remembered = ReadAcceleratorCache();
        if (remembered.TryGetValue(key, out var accelerator) && accelerator is "kvm" or "tcg")
        {
            return accelerator;
        }

        accelerator = await BootsUnderKvmAsync(template) ? "kvm" : "tcg";
        remembered = ReadAcceleratorCache();
        remembered[key] = accelerator;
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(acceleratorCacheFile))!);
        var written = acceleratorCacheFile + "." + Environment.ProcessId + ".tmp";
        await File.WriteAllTextAsync(written, JsonSerializer.Serialize(remembered, new JsonSerializerOptions { WriteIndented = true }));
        File.Move(written, acceleratorCacheFile, overwrite: true);
        return accelerator;
    }

    private Dictionary<string, string> ReadAcceleratorCache()
    {
        try
        {
            return JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(acceleratorCacheFile)) ?? [];
        }
        catch (Exception exception) when (exception is FileNotFoundException or DirectoryNotFoundException or JsonException)
        {
            return [];
        }
    }

    /// <summary>
    /// A real boot, without network: only reaching ready counts. The trial QEMU must never outlive this process, however it
    /// ends (a crash, a SIGKILL, <c>./platform down</c> in the middle of a probe): a shell holds it and kills it when the pipe
    /// it reads from this process closes, which the kernel does when this process dies. Its work directory lies beside the
    /// accelerator cache, so that what a probe leaves is found as the agent's.
    /// </summary>
    private async Task<bool> BootsUnderKvmAsync(MicroVmTemplate template)
    {
        var work = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(acceleratorCacheFile))!, KvmProbePrefix + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(work);
        var start = new ProcessStartInfo("/bin/sh")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // QEMU in the background; a watcher reads the shell's stdin (our pipe, as fd 3: a background list's own stdin is
        // /dev/null) and kills QEMU at its end of file. The shell ends with QEMU, so an early abort (an unusable KVM) is
        // seen at once.
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("exec 3<&0; \"$0\" \"$@\" </dev/null 3<&- & qemu=$!; (read -r _ <&3; kill -KILL $qemu 2>/dev/null) & exec 3<&-; wait $qemu");
        start.ArgumentList.Add(qemu);
        foreach (var argument in (string[])[
            "-M", "microvm,x-option-roms=off,pit=off,pic=off,rtc=on,isa-serial=on",
            "-accel", "kvm", "-cpu", "host", "-m", "128M", "-smp", "1",
            "-kernel", template.KernelPath, "-initrd", template.InitramfsPath,
            "-append", template.CommandLine + " platform.id=kvm-probe platform.hostname=kvm-probe platform.ip=192.0.2.2/24",
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-chardev", $"socket,id=serial0,path={Path.Combine(work, "serial.sock")},server=on,wait=off,logfile={Path.Combine(work, "serial.log")},logappend=on",
            "-serial", "chardev:serial0"])
        {
            start.ArgumentList.Add(argument);
        }

        using var timeout = new CancellationTokenSource(AcceleratorProbeTimeout);
        using var process = Process.Start(start)!;
        var drained = Task.WhenAll(process.StandardOutput.ReadToEndAsync(), process.StandardError.ReadToEndAsync());
        var exited = process.WaitForExitAsync();
        try
        {
            using var serial = await SerialConsole.ConnectAsync(Path.Combine(work, "serial.sock"), Path.Combine(work, "serial.log"), exited, timeout.Token);
            var ready = serial.WaitForLineAsync(ReadyPrefix + "kvm-probe", timeout.Token);
            return await Task.WhenAny(ready, exited) == ready && ready.IsCompletedSuccessfully;
        }
        catch (Exception exception) when (exception is OperationCanceledException or InvalidOperationException or IOException)
        {
            return false;
        }
        finally
        {
            // Closing the pipe has the watcher kill QEMU; the shell ends with it.
            process.StandardInput.Close();
            await exited;
            await drained;
            Directory.Delete(work, recursive: true);
        }
    }
}
