using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Microsoft.Extensions.Options;
using Platform.Messaging;
using Platform.Messaging.Relay;

namespace Platform.Telemetry.BrokerSubscriptions;

/// <summary>
/// The broker's side of a subscription, made through RabbitMQ's management HTTP API (users and permissions exist only
/// there): a durable queue, bound to the headers exchange <see cref="TenantEventsExchange"/> on the tenant's
/// <c>Platform-Tenant</c> header (or, for a platform-wide subscription, to the exchange every event reaches), and a user
/// whose only permission is to read that queue: it can consume and acknowledge, and cannot publish, declare, bind or
/// read anything else. Every step is idempotent, so a creation or deletion can be tried again.
/// </summary>
public sealed class BrokerAccounts(IOptions<BrokerSubscriptionOptions> options, RabbitMqAddress broker) : IDisposable
{
    private readonly Lazy<HttpClient> _management = new(() => CreateClient(options.Value, broker));

    /// <summary>Receives every event (bound to <see cref="PlatformTopology.IntegrationEventsExchange"/>) and routes it on its headers.</summary>
    public const string TenantEventsExchange = "platform.events.by-tenant";

    public bool Configured => options.Value.ManagementUrl is not null;

    private string VirtualHost => Uri.EscapeDataString(broker.VirtualHost);

    /// <summary>Makes the queue, its binding and the user; returns the user's password (a new one on every call).</summary>
    public async Task<string> CreateAsync(BrokerSubscription subscription, CancellationToken cancellationToken)
    {
        var management = _management.Value;
        await SendAsync(management, HttpMethod.Put, $"api/exchanges/{VirtualHost}/{Uri.EscapeDataString(TenantEventsExchange)}", new { type = "headers", durable = true, auto_delete = false }, cancellationToken);
        await SendAsync(management, HttpMethod.Put, $"api/exchanges/{VirtualHost}/{Uri.EscapeDataString(PlatformTopology.IntegrationEventsExchange)}", new { type = "fanout", durable = true, auto_delete = false }, cancellationToken);
        await SendAsync(management, HttpMethod.Post, $"api/bindings/{VirtualHost}/e/{Uri.EscapeDataString(PlatformTopology.IntegrationEventsExchange)}/e/{Uri.EscapeDataString(TenantEventsExchange)}", new { routing_key = "" }, cancellationToken);
        await SendAsync(management, HttpMethod.Put, $"api/queues/{VirtualHost}/{subscription.Queue}", new { durable = true, auto_delete = false }, cancellationToken);
        if (subscription.TenantId is { } tenant)
        {
            var arguments = new Dictionary<string, string> { ["x-match"] = "all", [RelayHeaders.TenantId] = tenant.ToString() };
            await SendAsync(management, HttpMethod.Post, $"api/bindings/{VirtualHost}/e/{Uri.EscapeDataString(TenantEventsExchange)}/q/{subscription.Queue}", new { routing_key = "", arguments }, cancellationToken);
        }
        else
        {
            await SendAsync(management, HttpMethod.Post, $"api/bindings/{VirtualHost}/e/{Uri.EscapeDataString(PlatformTopology.IntegrationEventsExchange)}/q/{subscription.Queue}", new { routing_key = "" }, cancellationToken);
        }

        var password = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24));
        await SendAsync(management, HttpMethod.Put, $"api/users/{subscription.Username}", new { password, tags = "" }, cancellationToken);
        await SendAsync(management, HttpMethod.Put, $"api/permissions/{VirtualHost}/{subscription.Username}",
            new { configure = "^$", write = "^$", read = $"^{System.Text.RegularExpressions.Regex.Escape(subscription.Queue)}$" }, cancellationToken);
        return password;
    }

    /// <summary>Deletes the user (closing its connections) and the queue; what is gone already is fine.</summary>
    public async Task DeleteAsync(BrokerSubscription subscription, CancellationToken cancellationToken)
    {
        var management = _management.Value;
        await SendAsync(management, HttpMethod.Delete, $"api/users/{subscription.Username}", null, cancellationToken);
        await SendAsync(management, HttpMethod.Delete, $"api/queues/{VirtualHost}/{subscription.Queue}", null, cancellationToken);
    }

    /// <summary>The URL a subscriber connects to: the user's credentials, and the virtual host.</summary>
    public string UrlFor(BrokerSubscription subscription, string? password)
    {
        var host = options.Value.PublicUrl ?? new Uri($"amqp://{broker.Host}:{broker.Port}");
        var credentials = password is null ? subscription.Username : $"{subscription.Username}:{password}";
        return $"{host.Scheme}://{credentials}@{host.Authority}/{VirtualHost}";
    }

    public void Dispose()
    {
        if (_management.IsValueCreated)
        {
            _management.Value.Dispose();
        }
    }

    private static HttpClient CreateClient(BrokerSubscriptionOptions options, RabbitMqAddress broker)
    {
        var client = new HttpClient
        {
            BaseAddress = options.ManagementUrl ?? throw new InvalidOperationException("The broker's management API is not configured."),
            Timeout = TimeSpan.FromSeconds(10),
        };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{broker.Username}:{broker.Password}")));
        return client;
    }

    private static async Task SendAsync(HttpClient management, HttpMethod method, string path, object? body, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        using var response = await management.SendAsync(request, cancellationToken);
        if (!response.IsSuccessStatusCode && !(method == HttpMethod.Delete && response.StatusCode == HttpStatusCode.NotFound))
        {
            throw new HttpRequestException($"The broker's management API answered {(int)response.StatusCode} to {method} {path}: {await response.Content.ReadAsStringAsync(cancellationToken)}");
        }
    }
}
