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
}
