using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Platform.Hosting.Startup;

/// <summary>
/// How a host part waits for its dependency before the service takes traffic: unreachable is retried until the
/// startup timeout; a refusal (bad password, missing database) fails at once. Either way the failure is one line
/// naming the dependency.
/// </summary>
public static class StartupRetry
{
    /// <param name="what">The dependency, as the operator knows it ("RabbitMQ at host:5672/vhost").</param>
    /// <param name="refusal">A final, one-line reason for an error that retrying cannot fix, or null to retry.</param>
    public static async Task UntilAsync(TimeSpan timeout, string what, ILogger logger, Func<Task> attempt, Func<Exception, string?> refusal)
    {
        var deadline = DateTime.UtcNow + timeout;
        var warned = false;
        while (true)
        {
            try
            {
                await attempt();
                return;
            }
            catch (Exception exception) when (exception is not OperationCanceledException)
            {
                if (refusal(exception) is { } final)
                {
                    throw new StartupException(final);
                }

                var reason = Innermost(exception).Message;
                if (DateTime.UtcNow > deadline)
                {
                    throw new StartupException($"{what} unreachable after {timeout.TotalSeconds:0} s: {reason}");
                }

                if (!warned)
                {
                    logger.LogWarning("Waiting for {Dependency}: {Reason}", what, reason);
                    warned = true;
                }

                await Task.Delay(500);
            }
        }
    }

    /// <summary>The exception that says what went wrong: the innermost one, or the socket error on the way.</summary>
    public static Exception Innermost(Exception exception)
    {
        while (exception.InnerException is { } inner && exception is not SocketException)
        {
            exception = inner;
        }

        return exception;
    }
}
