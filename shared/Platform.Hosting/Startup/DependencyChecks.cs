using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Npgsql;
using Platform.EventSourcing;
using Platform.Messaging;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace Platform.Hosting.Startup;

/// <summary>
/// Before a service takes traffic: PostgreSQL answers and the schema is migrated, RabbitMQ accepts the
/// credentials and holds the platform's shared topology (<see cref="PlatformTopology"/>). Unreachable is retried until the startup timeout; a refusal (bad password, missing
/// database) fails at once. Either way the failure is one line naming the dependency.
/// </summary>
internal static class DependencyChecks
{
    /// <summary>Makes the event store's tables (Marten's and its own) and then <paramref name="migrations"/> in the store's schema, once PostgreSQL answers.</summary>
    public static async Task MigratePostgresAsync(EventStore store, IReadOnlyList<SchemaMigration> migrations, TimeSpan timeout, ILogger logger, CancellationToken cancellationToken)
    {
        var where = PostgresEndpoint(store.DataSource.ConnectionString);
        await RetryUntilAsync(timeout, $"PostgreSQL at {where}", logger, async () =>
        {
            await store.MigrateAsync(cancellationToken);
            await SchemaMigrator.ApplyAsync(store.DataSource, store.Schema, migrations, cancellationToken);
        }, exception => exception is PostgresException postgres
            ? $"PostgreSQL at {where} refused: {postgres.MessageText} ({postgres.SqlState})"
            : null);
    }

    public static async Task CheckRabbitMqAsync(RabbitMqAddress address, TimeSpan timeout, ILogger logger, CancellationToken cancellationToken)
    {
        var factory = new ConnectionFactory
        {
            HostName = address.Host,
            Port = address.Port,
            VirtualHost = address.VirtualHost,
            UserName = address.Username,
            Password = address.Password,
            RequestedConnectionTimeout = TimeSpan.FromSeconds(3),
        };
        await RetryUntilAsync(timeout, $"RabbitMQ at {address}", logger, async () =>
        {
            await using var connection = await factory.CreateConnectionAsync(cancellationToken);
            await PlatformTopology.DeclareAsync(connection, cancellationToken);
        }, exception => Innermost(exception) switch
        {
            AuthenticationFailureException => $"RabbitMQ at {address} refused the credentials of user '{address.Username}'",
            OperationInterruptedException interrupted when interrupted.ShutdownReason?.ReplyCode == 530 =>
                $"RabbitMQ at {address} refused access to virtual host '{address.VirtualHost}'",
            _ => null,
        });
    }

    public static string PostgresEndpoint(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        return $"{builder.Host}:{builder.Port}/{builder.Database}";
    }

    /// <param name="refusal">A final, one-line reason for an error that retrying cannot fix, or null to retry.</param>
    private static async Task RetryUntilAsync(TimeSpan timeout, string what, ILogger logger, Func<Task> attempt, Func<Exception, string?> refusal)
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

    private static Exception Innermost(Exception exception)
    {
        while (exception.InnerException is { } inner && exception is not SocketException)
        {
            exception = inner;
        }

        return exception;
    }
}
