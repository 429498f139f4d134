using System.Text;
using Platform.Provisioning.Drivers.Guests;

namespace Platform.Provisioning.Tests;

/// <summary>Reads what a process on a terminal writes, as a person at the terminal would wait for it.</summary>
public static class TerminalScript
{
    /// <summary>Reads <paramref name="process"/>'s output until it holds <paramref name="expected"/>; returns all it read. Fails after 30 s.</summary>
    public static async Task<string> ExpectAsync(IGuestProcess process, string expected)
    {
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var seen = new StringBuilder();
        var buffer = new byte[4096];
        while (!seen.ToString().Contains(expected, StringComparison.Ordinal))
        {
            int read;
            try
            {
                read = await process.StandardOutput.ReadAsync(buffer, patience.Token);
            }
            catch (IOException)
            {
                // A terminal whose last process closed it answers EIO.
                read = 0;
            }

            if (read == 0)
            {
                throw new Xunit.Sdk.XunitException($"The terminal closed before '{expected}'; it showed: {seen}");
            }

            seen.Append(Encoding.UTF8.GetString(buffer, 0, read));
        }

        return seen.ToString();
    }

    /// <summary>
    /// The command every terminal test runs (<see cref="Command"/>) on a 100 by 30 terminal: it tells its size when
    /// told to look, is on a terminal on both streams, follows a resize to 120 by 40, and exits 6.
    /// </summary>
    public static async Task AssertSizedThenResizedAsync(IGuestProcess process)
    {
        await process.StandardInput.WriteAsync("look\n"u8.ToArray());
        var first = await ExpectAsync(process, "30 100");
        process.Resize(new TerminalSize(120, 40));
        await process.StandardInput.WriteAsync("go\n"u8.ToArray());

        var seen = first + await ExpectAsync(process, "40 120");
        Xunit.Assert.Contains("both", seen, StringComparison.Ordinal);
        Xunit.Assert.Equal(6, await process.Exited.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    /// <summary>Looks at its size once told to (a container's terminal is sized just after its start), then again after a line.</summary>
    public static GuestCommand Command { get; } = new(["/bin/sh", "-c", "read line; stty size; test -t 0 && test -t 2 && echo both $TERM; read line; stty size; exit 6"]) { Terminal = new TerminalSize(100, 30) };
}
