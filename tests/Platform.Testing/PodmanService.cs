using System.Diagnostics;
using System.Formats.Tar;

namespace Platform.Testing;

/// <summary>
/// A podman Docker-compatible service of the tests' own (<c>podman system service</c> on a socket under
/// <c>/tmp/pmt-podman-…</c>) with a private configuration and storage, so that it never touches a user's podman
/// state, and one image, <see cref="Image"/>, imported from a busybox root filesystem (no registry is needed).
/// Its containers go under their own cgroup, <see cref="CgroupParent"/>. Disposing removes every container, stops the
/// service and removes its directory and cgroups. Needs root, podman and runc, and busybox-static.
/// </summary>
public sealed class PodmanService : IAsyncDisposable
{
    /// <summary>The image every test runs: busybox, whose command idles until it is asked to stop.</summary>
    public const string Image = "localhost/pmt-busybox:latest";

    /// <summary>busybox applets the image links, for the tests' commands.</summary>
    private static readonly string[] Applets = ["sh", "sleep", "echo", "cat", "tail", "head", "true", "false", "yes", "dd", "ls", "hostname", "env", "id", "seq", "ps", "tr",
        "stat", "mktemp", "tar", "dirname", "chmod", "mv", "rm", "rmdir", "mkdir", "ln", "pwd"];

    private readonly Process _service;

    private PodmanService(string directory, Process service)
    {
        Directory = directory;
        _service = service;
    }

    /// <summary>Its configuration, storage, socket and logs (<c>/tmp/pmt-podman-…</c>).</summary>
    public string Directory { get; }

    public string Socket => Path.Combine(Directory, "podman.sock");

    /// <summary>The cgroup (relative to each hierarchy's root) the tests' containers are created under.</summary>
    public string CgroupParent => "/" + Path.GetFileName(Directory);

    private string ContainersConf => Path.Combine(Directory, "containers.conf");

    private string StorageConf => Path.Combine(Directory, "storage.conf");

    public static async Task<PodmanService> StartAsync()
    {
        var directory = System.IO.Directory.CreateDirectory($"/tmp/pmt-podman-{Guid.NewGuid().ToString("N")[..8]}").FullName;
        // As PACKAGES.md found works here: runc (crun refuses hybrid cgroups), vfs, cgroupfs, events to a file, and
        // ulimits root here can set. Every path podman keeps state in is inside the directory.
        await File.WriteAllTextAsync(Path.Combine(directory, "containers.conf"), $"""
            [containers]
            default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

            [engine]
            runtime = "runc"
            cgroup_manager = "cgroupfs"
            events_logger = "file"
            events_logfile_path = "{directory}/events.log"
            tmp_dir = "{directory}/tmp"
            volume_path = "{directory}/volumes"

            [network]
            network_config_dir = "{directory}/networks"
            """);
        await File.WriteAllTextAsync(Path.Combine(directory, "storage.conf"), $"""
            [storage]
            driver = "vfs"
            graphroot = "{directory}/root"
            runroot = "{directory}/runroot"
            """);

        var start = new ProcessStartInfo("podman", ["system", "service", "--time=0", $"unix://{directory}/podman.sock"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        SetConfiguration(start, directory);
        Process service;
        try
        {
            service = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception missing)
        {
            System.IO.Directory.Delete(directory, recursive: true);
            throw new InvalidOperationException("podman is not installed: apt-get install --no-install-recommends podman runc", missing);
        }

        var podman = new PodmanService(directory, service);
        try
        {
            service.BeginOutputReadLine();
            service.BeginErrorReadLine();
            await podman.ImportImageAsync();
            await Eventually.TrueAsync(() => File.Exists(podman.Socket) || service.HasExited, TimeSpan.FromSeconds(30), "podman's service makes its socket");
            if (service.HasExited)
            {
                throw new InvalidOperationException($"podman system service exited with {service.ExitCode}");
            }

            return podman;
        }
        catch
        {
            await podman.DisposeAsync();
            throw;
        }
    }

    /// <summary>Runs the podman command line on the service's storage; throws with its errors when it fails.</summary>
    public async Task<string> RunAsync(params string[] arguments)
    {
        var start = new ProcessStartInfo("podman", arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        SetConfiguration(start, Directory);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"podman {string.Join(' ', arguments)} failed ({process.ExitCode}): {(await errors).Trim()}");
        }

        return await output;
    }

    /// <summary>The names of every container podman holds, running or not.</summary>
    public async Task<IReadOnlyList<string>> ContainerNamesAsync() =>
        (await RunAsync("ps", "--all", "--format", "{{.Names}}")).Split('\n', StringSplitOptions.RemoveEmptyEntries);

    public async ValueTask DisposeAsync()
    {
        try
        {
            // Containers first, while podman can still unmount and unplug them; then the service.
            await RunAsync("rm", "--all", "--force", "--time", "0");
        }
        finally
        {
            if (!_service.HasExited)
            {
                _service.Kill();
            }

            await _service.WaitForExitAsync();
            _service.Dispose();
            // An exec session's conmon can outlive its container by a moment (and then the service): it goes too.
            await KillProcessesNamingAsync(Directory);
            UnmountUnder(Directory);
            System.IO.Directory.Delete(Directory, recursive: true);
            RemoveCgroups(Path.GetFileName(Directory));
        }
    }

    private static async Task KillProcessesNamingAsync(string directory)
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            var found = System.IO.Directory.EnumerateDirectories("/proc")
                .Select(Path.GetFileName)
                .Where(name => name!.All(char.IsAsciiDigit))
                .Select(name => int.Parse(name!, System.Globalization.CultureInfo.InvariantCulture))
                .Where(pid => pid != Environment.ProcessId && CommandLineOf(pid).Contains(directory, StringComparison.Ordinal))
                .ToList();
            if (found.Count == 0)
            {
                return;
            }

            foreach (var pid in found)
            {
                try
                {
                    Process.GetProcessById(pid).Kill();
                }
                catch (Exception exception) when (exception is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
                {
                    // Gone already.
                }
            }

            await Task.Delay(100);
        }
    }

    private static string CommandLineOf(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline");
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static void SetConfiguration(ProcessStartInfo start, string directory)
    {
        start.Environment["CONTAINERS_CONF"] = Path.Combine(directory, "containers.conf");
        start.Environment["CONTAINERS_STORAGE_CONF"] = Path.Combine(directory, "storage.conf");
    }

    /// <summary>A root filesystem of busybox-static and links to its applets, imported as <see cref="Image"/>.</summary>
    private async Task ImportImageAsync()
    {
        var tarball = Path.Combine(Directory, "busybox-rootfs.tar");
        await using (var file = File.Create(tarball))
        await using (var tar = new TarWriter(file, TarEntryFormat.Pax))
        {
            foreach (var empty in new[] { "bin/", "dev/", "etc/", "proc/", "sys/", "tmp/" })
            {
                await tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.Directory, empty) { Mode = (UnixFileMode)0b111_101_101 });
            }

            await tar.WriteEntryAsync("/bin/busybox", "bin/busybox");
            foreach (var applet in Applets)
            {
                await tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.SymbolicLink, $"bin/{applet}") { LinkName = "busybox" });
            }
        }

        // sh as PID 1 ignores SIGTERM unless it traps it: the trap makes a stop take milliseconds, not the stop timeout.
        await RunAsync("import", "--change", """CMD ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep infinity & wait"]""", tarball, Image);
        File.Delete(tarball);
    }

    /// <summary>What podman may have left mounted (a container's /dev/shm) when it was stopped before its containers.</summary>
    private static void UnmountUnder(string directory)
    {
        var mounts = File.ReadAllLines("/proc/self/mountinfo").Select(l => l.Split(' ')[4]).Where(m => m.StartsWith(directory + "/", StringComparison.Ordinal));
        foreach (var mount in mounts.OrderByDescending(m => m.Length))
        {
            using var umount = Process.Start("umount", ["-l", mount]);
            umount.WaitForExit();
        }
    }

    /// <summary>The cgroup of the tests' containers, in every hierarchy (v1) or the one (v2), with podman's conmon cgroup inside it.</summary>
    private static void RemoveCgroups(string name)
    {
        var roots = System.IO.Directory.Exists("/sys/fs/cgroup") ? System.IO.Directory.EnumerateDirectories("/sys/fs/cgroup").Append("/sys/fs/cgroup") : [];
        foreach (var cgroup in roots.Select(r => Path.Combine(r, name)).Where(System.IO.Directory.Exists))
        {
            // Children first: a cgroup directory goes only once it is empty (its files are the kernel's, not removable).
            foreach (var child in System.IO.Directory.EnumerateDirectories(cgroup, "*", SearchOption.AllDirectories).OrderByDescending(c => c.Length).Append(cgroup))
            {
                System.IO.Directory.Delete(child);
            }
        }
    }
}
