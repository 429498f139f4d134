using RabbitMQ.Client;

namespace Platform.Messaging;

/// <summary>The broker to use, from an AMQP URI: <c>amqp://user:password@host:port/vhost</c>.</summary>
public sealed record RabbitMqAddress(string Host, int Port, string VirtualHost, string Username, string Password)
{
    public static RabbitMqAddress Parse(string uri)
    {
        if (!Uri.TryCreate(uri, UriKind.Absolute, out var parsed) || parsed.Scheme is not ("amqp" or "amqps"))
        {
            throw new FormatException("The RabbitMQ connection string must be an AMQP URI such as amqp://user:password@host:5672/vhost.");
        }

        var credentials = parsed.UserInfo.Split(':', 2);
        if (credentials.Length != 2 || credentials[0].Length == 0)
        {
            throw new FormatException("The RabbitMQ connection string must name a user and a password (amqp://user:password@host:port/vhost).");
        }

        var virtualHost = Uri.UnescapeDataString(parsed.AbsolutePath.TrimStart('/'));
        return new RabbitMqAddress(
            parsed.Host,
            parsed.IsDefaultPort ? 5672 : parsed.Port,
            virtualHost.Length == 0 ? "/" : virtualHost,
            Uri.UnescapeDataString(credentials[0]),
            Uri.UnescapeDataString(credentials[1]));
    }

    /// <summary>
    /// A plain connection of the service's own to the broker, beside the bus's (for checking on it): no automatic recovery,
    /// 3 s to connect, named <paramref name="name"/> in the broker's list of connections.
    /// </summary>
    public Task<IConnection> ConnectAsync(string name, CancellationToken cancellationToken) =>
        new ConnectionFactory
        {
            HostName = Host,
            Port = Port,
            VirtualHost = VirtualHost,
            UserName = Username,
            Password = Password,
            AutomaticRecoveryEnabled = false,
            RequestedConnectionTimeout = TimeSpan.FromSeconds(3),
            ClientProvidedName = name,
        }.CreateConnectionAsync(cancellationToken);

    /// <summary>Where the broker is, without credentials: safe to log.</summary>
    public override string ToString() => $"amqp://{Host}:{Port}/{(VirtualHost == "/" ? "" : VirtualHost)}";
}
