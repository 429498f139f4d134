using System.Diagnostics;
using Xunit;

namespace Platform.Testing;

/// <summary>Python 3 with pika, the non-.NET AMQP client the broker contract is proved with.</summary>
public static class Pika
{
    /// <summary>
    /// Runs <paramref name="script"/> with <c>AMQP_URL</c> and <c>AMQP_QUEUE</c> set from <paramref name="subscription"/>
    /// (and <c>IDLE_SECONDS</c> 3, so that a consumer stops soon after its queue is drained); answers what it printed.
    /// Fails the test when the script fails or outlasts <paramref name="timeout"/>.
    /// </summary>
    public static async Task<string> RunAsync(string script, AmqpSubscription subscription, TimeSpan timeout, IReadOnlyDictionary<string, string>? environment = null)
    {
        var file = Path.Combine(Path.GetTempPath(), $"pmt-pika-{Guid.NewGuid():N}.py");
        await File.WriteAllTextAsync(file, script);
        var start = new ProcessStartInfo("/usr/bin/python3", [file])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment = { ["AMQP_URL"] = subscription.Url, ["AMQP_QUEUE"] = subscription.Queue, ["IDLE_SECONDS"] = "3" },
        };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        using var python = Process.Start(start)!;
        try
        {
            var output = python.StandardOutput.ReadToEndAsync();
            var errors = python.StandardError.ReadToEndAsync();
            await python.WaitForExitAsync().WaitAsync(timeout);
            Assert.True(python.ExitCode == 0, $"python exited {python.ExitCode}: {await errors}");
            return await output;
        }
        finally
        {
            if (!python.HasExited)
            {
                python.Kill();
            }

            File.Delete(file);
        }
    }
}
