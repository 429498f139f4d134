namespace Platform.Telemetry.BrokerSubscriptions;

/// <summary>
/// <c>Platform:Telemetry:Broker</c>: where the broker's management API is (its users and permissions are made there, with
/// the service's own broker credentials, which must be an administrator's), and the AMQP URL external subscribers are
/// given (the service's own broker address when unset).
/// </summary>
public sealed class BrokerSubscriptionOptions
{
    public const string Section = "Platform:Telemetry:Broker";

    /// <summary>For example <c>http://127.0.0.1:15672</c>; without it, subscriptions of kind <c>amqp</c> are refused.</summary>
    public Uri? ManagementUrl { get; set; }

    /// <summary>The broker as subscribers reach it, for example <c>amqps://broker.example.com:5671</c> (no credentials, no virtual host).</summary>
    public Uri? PublicUrl { get; set; }
}
