using System.Diagnostics;
using System.Text;
using Platform.Provisioning.Drivers.Guests;
using Platform.Provisioning.Drivers.MicroVm;
using Platform.Testing;

namespace Platform.Provisioning.Tests;

/// <summary>Micro-VMs paused to disk and resumed: nothing of the guest runs or takes the host's memory meanwhile, and it goes on as it was.</summary>
public sealed partial class MicroVmTests
{
    /// <summary>
    /// Twice: the first pause copies the guest's memory file out and the resume maps it; the second (of a guest whose memory
    /// is that mapping) writes the memory into the stream and the resume reads it back.
    /// </summary>
    [Fact]
    public async Task A_micro_vm_paused_to_disk_has_no_qemu_and_no_memory_file_and_once_resumed_its_counter_and_files_go_on_from_where_they_were()
    {
        var snapshot = await fixture.SnapshotAsync();
        await using var machine = await fixture.MachineAsync(subnet: 28);
        await RestoreAsync(snapshot, machine);
        var pausedDirectory = Path.Combine(Path.GetTempPath(), "pmt-paused-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var kept = await RunAsync(machine.Vm!, new GuestCommand(["/bin/sh", "-c", "echo written-before > /scratch/kept"]));
            Assert.Equal(0, kept.Code);
            // A counter whose output comes through the guest agent's session: it must outlive the pause, session and all.
            var counter = await machine.Vm!.StartAsync(new GuestCommand(["/bin/sh", "-c", "i=0; while :; do i=$((i + 1)); echo $i; sleep 0.2; done"]), Timeout());
            var counts = new List<int>();
            var reading = ReadCountsAsync(counter.StandardOutput, counts);
            await Eventually.TrueAsync(() => Task.FromResult(Count(counts) >= 3), TimeSpan.FromSeconds(30), "the counter counts");
            var qemu = machine.Vm!.ProcessId;
            var memoryFile = Directory.GetFiles(MicroVmFixture.MemoryDirectory, machine.Spec.Id + "*").Single();

            var paused = await fixture.Runner.PauseAsync(machine.Vm!, pausedDirectory, Timeout());
            var lastBeforePause = counts.Count == 0 ? 0 : Last(counts);
            var qemuGone = Process.GetProcesses().All(p => p.Id != qemu);
            var memoryGone = !File.Exists(memoryFile);
            await Task.Delay(TimeSpan.FromSeconds(2));
            var whilePaused = Last(counts);
            machine.Vm = await fixture.Runner.ResumeAsync(paused, machine.Spec, Timeout());
            await Eventually.TrueAsync(() => Task.FromResult(Last(counts) >= lastBeforePause + 3), TimeSpan.FromSeconds(30), "the counter counts on");
            var lazyImage = File.Exists(paused.Image.MemoryPath);
            Directory.Delete(pausedDirectory, recursive: true);
            var again = await fixture.Runner.PauseAsync(machine.Vm!, pausedDirectory, Timeout());
            var streamedImage = !File.Exists(again.Image.MemoryPath);
            var lastBeforeSecondPause = Last(counts);
            machine.Vm = await fixture.Runner.ResumeAsync(again, machine.Spec, Timeout());
            await Eventually.TrueAsync(() => Task.FromResult(Last(counts) >= lastBeforeSecondPause + 3), TimeSpan.FromSeconds(30), "the counter counts on after a second pause");
            var file = await RunAsync(machine.Vm!, new GuestCommand(["cat", "/scratch/kept"]));
            counter.Signal(9);
            await counter.Exited.WaitAsync(Timeout());
            await reading;

            Assert.True(qemuGone, "no QEMU runs while it is paused");
            Assert.True(memoryGone, "its memory file is gone from the host's memory while it is paused");
            Assert.True(new FileInfo(paused.Image.StatePath).Length > 0);
            Assert.True(lazyImage, "the first image keeps the guest's memory as a file to map");
            Assert.True(streamedImage, "the second image has the memory in its stream");
            Assert.Equal(lastBeforePause, whilePaused);
            // Every count once, in order: it went on from where it stopped, neither restarted nor skipped.
            Assert.Equal(Enumerable.Range(1, counts.Count), counts);
            Assert.Equal((0, "written-before\n"), (file.Code, file.Output));
        }
        finally
        {
            if (Directory.Exists(pausedDirectory))
            {
                Directory.Delete(pausedDirectory, recursive: true);
            }
        }
    }

    private static int Count(List<int> counts)
    {
        lock (counts)
        {
            return counts.Count;
        }
    }

    private static int Last(List<int> counts)
    {
        lock (counts)
        {
            return counts.Count == 0 ? 0 : counts[^1];
        }
    }

    private static async Task ReadCountsAsync(Stream output, List<int> counts)
    {
        using var reader = new StreamReader(output, Encoding.UTF8);
        while (await reader.ReadLineAsync() is { } line)
        {
            lock (counts)
            {
                counts.Add(int.Parse(line, System.Globalization.CultureInfo.InvariantCulture));
            }
        }
    }
}
