using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Platform.Provisioning.Drivers.Guests;

/// <summary>
/// A pseudoterminal the agent holds the primary side of: a command started on <see cref="SecondaryPath"/> (opened by
/// the launcher, which makes it the command's controlling terminal) writes to <see cref="Output"/> and reads what is
/// written to <see cref="Input"/>. Reading ends (an <see cref="IOException"/>, taken as the end) once every process
/// holding the secondary side has closed it.
/// </summary>
public sealed class Pseudoterminal : IDisposable
{
    private const int ReadWrite = 0x2;
    private const int NoControllingTerminal = 0x100;
    private const int CloseOnExec = 0x80000;
    private const ulong GetPtyNumber = 0x80045430;
    private const ulong SetPtyLock = 0x40045431;
    private const ulong SetWindowSize = 0x5414;

    private readonly int _primary;

    private Pseudoterminal(int primary, string secondaryPath)
    {
        _primary = primary;
        SecondaryPath = secondaryPath;
        // Two descriptors, so that a read that waits never holds up a write.
        Output = new FileStream(new SafeFileHandle(primary, ownsHandle: true), FileAccess.Read, bufferSize: 0);
        Input = new FileStream(new SafeFileHandle(Native.fcntl(primary, 1030 /* F_DUPFD_CLOEXEC */, 3), ownsHandle: true), FileAccess.Write, bufferSize: 0);
    }

    /// <summary>The secondary side, <c>/dev/pts/N</c>, for the command's launcher to open.</summary>
    public string SecondaryPath { get; }

    public Stream Output { get; }

    public Stream Input { get; }

    /// <summary>Opens a new pseudoterminal of <paramref name="size"/>.</summary>
    public static Pseudoterminal Open(TerminalSize size)
    {
        var primary = Native.open("/dev/ptmx", ReadWrite | NoControllingTerminal | CloseOnExec);
        if (primary < 0)
        {
            throw new IOException($"No pseudoterminal: /dev/ptmx: errno {Marshal.GetLastPInvokeError()}.");
        }

        var unlocked = 0;
        if (Native.ioctl(primary, SetPtyLock, ref unlocked) != 0 || Native.ioctl(primary, GetPtyNumber, ref unlocked) != 0)
        {
            var error = Marshal.GetLastPInvokeError();
            Native.close(primary);
            throw new IOException($"The pseudoterminal could not be unlocked: errno {error}.");
        }

        var terminal = new Pseudoterminal(primary, $"/dev/pts/{unlocked}");
        terminal.Resize(size);
        return terminal;
    }

    public void Resize(TerminalSize size)
    {
        var window = new WindowSize { Rows = (ushort)size.Rows, Columns = (ushort)size.Columns };
        _ = Native.ioctl(_primary, SetWindowSize, ref window);
    }

    public void Dispose()
    {
        Input.Dispose();
        Output.Dispose();
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct WindowSize
    {
        public ushort Rows;
        public ushort Columns;
        public ushort XPixels;
        public ushort YPixels;
    }

    private static class Native
    {
        [DllImport("libc", SetLastError = true)]
        public static extern int open(string path, int flags);

        [DllImport("libc", SetLastError = true)]
        public static extern int close(int fd);

        [DllImport("libc", SetLastError = true)]
        public static extern int fcntl(int fd, int command, int argument);

        [DllImport("libc", SetLastError = true)]
        public static extern int ioctl(int fd, ulong request, ref int argument);

        [DllImport("libc", SetLastError = true)]
        public static extern int ioctl(int fd, ulong request, ref WindowSize argument);
    }
}
