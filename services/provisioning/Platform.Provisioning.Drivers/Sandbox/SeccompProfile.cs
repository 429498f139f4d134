using System.Runtime.InteropServices;

namespace Platform.Provisioning.Drivers.Sandbox;

/// <summary>
/// The system calls a sandbox's processes may not make, compiled to the BPF program bubblewrap loads (<c>--seccomp</c>)
/// with the host's libseccomp. What it refuses is what Docker's default profile refuses a container without extra
/// capabilities: the kernel's module, key, BPF, perf, clock, swap, reboot and accounting interfaces, mounting and new
/// namespaces, reaching into other processes (ptrace, process_vm_*, kcmp, pidfd_getfd), handles to files by number
/// (open_by_handle_at, the "shocker" escape), io_uring, userfaultfd and the NUMA calls. A refused call fails with EPERM
/// (clone3 with ENOSYS, so that the C library falls back to clone, whose namespace flags are then refused); every other
/// call is allowed. Calls of another architecture (32-bit, x32) are refused too: libseccomp's filter kills a process
/// that makes them.
/// </summary>
public static class SeccompProfile
{
    private const int EPERM = 1;
    private const int ENOSYS = 38;

    /// <summary>The calls refused outright; names this kernel's architecture lacks are skipped.</summary>
    public static readonly IReadOnlyList<string> Refused =
    [
        "acct", "add_key", "request_key", "keyctl",
        "bpf", "perf_event_open", "lookup_dcookie", "fanotify_init", "syslog",
        "init_module", "finit_module", "delete_module", "create_module", "query_module", "get_kernel_syms",
        "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff",
        "clock_adjtime", "clock_settime", "settimeofday", "stime", "adjtimex",
        "mount", "umount", "umount2", "pivot_root", "mount_setattr", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
        "unshare", "setns",
        "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
        "name_to_handle_at", "open_by_handle_at",
        "io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd",
        "get_mempolicy", "set_mempolicy", "mbind", "move_pages", "migrate_pages",
        "ioperm", "iopl", "quotactl", "quotactl_fd", "nfsservctl", "sysfs", "_sysctl", "uselib", "ustat", "vm86", "vm86old", "vhangup",
    ];

    /// <summary>clone's namespace flags (CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME): a clone with any of them is refused.</summary>
    private static readonly ulong[] NamespaceFlags = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080];

    private static readonly Lazy<byte[]> Compiled = new(Compile);

    /// <summary>The compiled program (the same for every sandbox: compiled once).</summary>
    public static ReadOnlySpan<byte> Program => Compiled.Value;

    private static byte[] Compile()
    {
        var context = Native.seccomp_init(Native.ActionAllow);
        if (context == IntPtr.Zero)
        {
            throw new InvalidOperationException("libseccomp could not make a filter (seccomp_init failed).");
        }

        try
        {
            foreach (var name in Refused)
            {
                var number = Native.seccomp_syscall_resolve_name(name);
                // Negative: unknown, or a call of another architecture only (libseccomp's pseudo-numbers).
                if (number >= 0)
                {
                    Check(Native.seccomp_rule_add_array(context, Native.ActionErrno(EPERM), number, 0, null), name);
                }
            }

            Check(Native.seccomp_rule_add_array(context, Native.ActionErrno(ENOSYS), Native.seccomp_syscall_resolve_name("clone3"), 0, null), "clone3");
            var clone = Native.seccomp_syscall_resolve_name("clone");
            foreach (var flag in NamespaceFlags)
            {
                // x86_64's clone takes its flags as the first argument.
                var masked = new[] { new Native.ArgumentComparison(0, Native.MaskedEqual, flag, flag) };
                Check(Native.seccomp_rule_add_array(context, Native.ActionErrno(EPERM), clone, 1, masked), "clone");
            }

            var exported = Path.GetTempFileName();
            try
            {
                using (var file = new FileStream(exported, FileMode.Create, FileAccess.Write))
                {
                    Check(Native.seccomp_export_bpf(context, (int)file.SafeFileHandle.DangerousGetHandle()), "export");
                }

                return File.ReadAllBytes(exported);
            }
            finally
            {
                File.Delete(exported);
            }
        }
        finally
        {
            Native.seccomp_release(context);
        }
    }

    private static void Check(int result, string what)
    {
        if (result < 0)
        {
            throw new InvalidOperationException($"libseccomp refused the rule for {what}: error {-result}.");
        }
    }

    private static class Native
    {
        private const string Library = "libseccomp.so.2";
        public const uint ActionAllow = 0x7fff0000;
        public const int MaskedEqual = 7;

        public static uint ActionErrno(int errno) => 0x00050000u | ((uint)errno & 0xffff);

        [StructLayout(LayoutKind.Sequential)]
        public readonly record struct ArgumentComparison(uint Argument, int Operator, ulong DatumA, ulong DatumB);

        [DllImport(Library)]
        public static extern IntPtr seccomp_init(uint defaultAction);

        [DllImport(Library)]
        public static extern void seccomp_release(IntPtr context);

        [DllImport(Library, CharSet = CharSet.Ansi)]
        public static extern int seccomp_syscall_resolve_name(string name);

        [DllImport(Library)]
        public static extern int seccomp_rule_add_array(IntPtr context, uint action, int syscall, uint argumentCount, [In] ArgumentComparison[]? arguments);

        [DllImport(Library)]
        public static extern int seccomp_export_bpf(IntPtr context, int fd);
    }
}
