using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Platform.Contracts.Telemetry;
using Platform.EventSourcing;
using Platform.Hosting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;
using Platform.Telemetry.Audit;
using Platform.Telemetry.BrokerSubscriptions;

namespace Platform.Telemetry.Webhooks;

/// <summary><paramref name="Kind"/>: <c>webhook</c> (the default) or <c>amqp</c> (a queue of the caller's own on the broker, which takes no other field).</summary>
public sealed record CreateSubscriptionRequest(string? Url, IReadOnlyList<string>? EventTypes, string? Secret, string? Kind = null);

/// <summary>The one answer that shows the signing secret.</summary>
public sealed record CreatedSubscription(Guid Id, string Url, IReadOnlyList<string>? EventTypes, string Secret, long StartsAfter, DateTimeOffset CreatedAt);

public sealed record SubscriptionView(
    Guid Id, Guid? TenantId, string Url, IReadOnlyList<string>? EventTypes, long DeliveredThrough, int Attempts, DateTimeOffset NextAttemptAt, string? LastError, int DeadLetters, DateTimeOffset CreatedAt)
{
    public string Kind => "webhook";
}

public sealed record RedeliveryRequested(int DeadLetters);

public sealed record ReplayRequested(long From);

/// <summary>
/// Webhook subscriptions of the caller's tenant (a tenant-less platform-admin's see every event). A new
/// subscription receives events from its creation on; replay and dead-letter redelivery go back.
/// </summary>
public static class WebhookEndpoints
{
    public static void MapWebhooks(this IEndpointRouteBuilder app)
    {
        var subscriptions = app.MapGroup("/api/v1/subscriptions");
        subscriptions.MapPost("", CreateAsync);
        subscriptions.MapGet("", ListAsync);
        subscriptions.MapGet("/{subscriptionId:guid}", GetAsync);
        subscriptions.MapDelete("/{subscriptionId:guid}", DeleteAsync);
        subscriptions.MapPost("/{subscriptionId:guid}/replay", ReplayAsync);
        subscriptions.MapGet("/{subscriptionId:guid}/dead-letters", DeadLettersAsync);
        subscriptions.MapPost("/{subscriptionId:guid}/dead-letters/redeliver", RedeliverAsync);
    }

    private static async Task<Results<Created<CreatedSubscription>, Created<CreatedBrokerSubscription>>> CreateAsync(
        CreateSubscriptionRequest? request, Caller caller, HttpContext http, EventStore events, WebhookStore store, BrokerSubscriptionStore brokerStore, BrokerAccounts accounts,
        AuditLog audit, IOptions<WebhookOptions> options, TimeProvider time, CancellationToken cancellationToken)
    {
        caller.RequireMutate("subscriptions");
        switch (request?.Kind)
        {
            case BrokerSubscriptionEndpoints.Kind when request is { Url: null, EventTypes: null, Secret: null }:
                return await BrokerSubscriptionEndpoints.CreateAsync(caller, http, events, brokerStore, accounts, time, cancellationToken);
            case BrokerSubscriptionEndpoints.Kind:
                throw Problems.Invalid("kind", "a subscription of kind 'amqp' takes no url, eventTypes or secret: its queue receives every event of the tenant");
            case null or "webhook":
                break;
            default:
                throw Problems.Invalid("kind", "must be 'webhook' or 'amqp'");
        }

        var errors = new Dictionary<string, string[]>();
        var url = await CheckUrlAsync(request?.Url, options.Value, errors, cancellationToken);
        var unknown = request?.EventTypes?.Where(t => !AuditEndpoints.KnownTypes.Contains(t)).ToArray() ?? [];
        if (unknown.Length > 0)
        {
            errors["eventTypes"] = [$"unknown event type(s): {string.Join(", ", unknown)}"];
        }

        if (request?.Secret is { } given && given.Length is < 16 or > 256)
        {
            errors["secret"] = ["must be 16 to 256 characters"];
        }

        if (errors.Count > 0)
        {
            throw Problems.Validation(errors);
        }

        var now = time.GetUtcNow();
        var secret = request!.Secret ?? Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var types = request.EventTypes is { Count: > 0 } list ? list.Distinct().ToArray() : null;
        var subscription = new WebhookSubscription(Guid.CreateVersion7(now), caller.TenantId, url!.ToString(), types, secret, await audit.HeadAsync(cancellationToken), 0, now, null, now);
        await using (var session = await events.BeginSessionAsync(cancellationToken))
        {
            await store.InsertAsync(session.Connection, session.Transaction, subscription, cancellationToken);
            session.Append($"webhook-{subscription.Id}", ExpectedVersion.NoStream,
                [new WebhookSubscriptionCreated(subscription.Id, subscription.TenantId, subscription.Url, types, now)],
                new EventMetadata(RequestCorrelation.Of(http), TenantId: caller.TenantId?.ToString(), Actor: caller.Subject));
            await session.CommitAsync(cancellationToken);
        }

        return TypedResults.Created($"/api/v1/subscriptions/{subscription.Id}", new CreatedSubscription(subscription.Id, subscription.Url, types, secret, subscription.Cursor, now));
    }

    /// <summary>Webhooks and then queues, each with its <c>kind</c>.</summary>
    private static async Task<Ok<IReadOnlyList<object>>> ListAsync(Caller caller, WebhookStore store, BrokerSubscriptionStore brokerStore, BrokerAccounts accounts, CancellationToken cancellationToken)
    {
        var views = new List<object>();
        foreach (var subscription in await store.ListAsync(caller.TenantId, caller.SeesAllTenants, cancellationToken))
        {
            views.Add(await ViewAsync(store, subscription, cancellationToken));
        }

        views.AddRange((await brokerStore.ListAsync(caller.TenantId, caller.SeesAllTenants, cancellationToken)).Select(s => BrokerSubscriptionEndpoints.View(accounts, s)));
        return TypedResults.Ok<IReadOnlyList<object>>(views);
    }

    private static async Task<Results<Ok<SubscriptionView>, Ok<BrokerSubscriptionView>>> GetAsync(
        Guid subscriptionId, Caller caller, WebhookStore store, BrokerSubscriptionStore brokerStore, BrokerAccounts accounts, CancellationToken cancellationToken) =>
        await BrokerSubscriptionEndpoints.FindVisibleAsync(brokerStore, caller, subscriptionId, cancellationToken) is { } queue
            ? TypedResults.Ok(BrokerSubscriptionEndpoints.View(accounts, queue))
            : TypedResults.Ok(await ViewAsync(store, await FindVisibleAsync(store, caller, subscriptionId, cancellationToken), cancellationToken));

    private static async Task<NoContent> DeleteAsync(
        Guid subscriptionId, Caller caller, HttpContext http, EventStore events, WebhookStore store, BrokerSubscriptionStore brokerStore, BrokerAccounts accounts, TimeProvider time, CancellationToken cancellationToken)
    {
        if (await BrokerSubscriptionEndpoints.FindVisibleAsync(brokerStore, caller, subscriptionId, cancellationToken) is { } queue)
        {
            await BrokerSubscriptionEndpoints.DeleteAsync(queue, caller, http, events, brokerStore, accounts, time, cancellationToken);
            return TypedResults.NoContent();
        }

        var subscription = await FindVisibleAsync(store, caller, subscriptionId, cancellationToken);
        caller.RequireMutate("subscriptions");
        var now = time.GetUtcNow();
        await using var session = await events.BeginSessionAsync(cancellationToken);
        await store.DeleteAsync(session.Connection, session.Transaction, subscription.Id, now, cancellationToken);
        session.Append($"webhook-{subscription.Id}", ExpectedVersion.Any, [new WebhookSubscriptionDeleted(subscription.Id, subscription.TenantId, now)],
            new EventMetadata(RequestCorrelation.Of(http), TenantId: subscription.TenantId?.ToString(), Actor: caller.Subject));
        await session.CommitAsync(cancellationToken);
        return TypedResults.NoContent();
    }

    /// <summary>Delivers again every event after <c>from - 1</c> (its audit position), in order; what was delivered is sent again.</summary>
    private static async Task<Accepted<ReplayRequested>> ReplayAsync(Guid subscriptionId, string? from, Caller caller, WebhookStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        var subscription = await FindVisibleAsync(store, caller, subscriptionId, cancellationToken);
        caller.RequireMutate("subscriptions");
        if (!long.TryParse(from, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var position) || position < 1)
        {
            throw Problems.Invalid("from", "must be an audit position (a whole number, 1 or more)");
        }

        await store.ReplayFromAsync(subscription.Id, position, time.GetUtcNow(), cancellationToken);
        return TypedResults.Accepted($"/api/v1/subscriptions/{subscription.Id}", new ReplayRequested(position));
    }

    private static async Task<Ok<IReadOnlyList<DeadLetter>>> DeadLettersAsync(Guid subscriptionId, Caller caller, WebhookStore store, CancellationToken cancellationToken)
    {
        var subscription = await FindVisibleAsync(store, caller, subscriptionId, cancellationToken);
        return TypedResults.Ok(await store.DeadLettersAsync(subscription.Id, pendingRedeliveryOnly: false, cancellationToken));
    }

    private static async Task<Accepted<RedeliveryRequested>> RedeliverAsync(Guid subscriptionId, Caller caller, WebhookStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        var subscription = await FindVisibleAsync(store, caller, subscriptionId, cancellationToken);
        caller.RequireMutate("subscriptions");
        var count = await store.RequestRedeliveryAsync(subscription.Id, time.GetUtcNow(), cancellationToken);
        return TypedResults.Accepted($"/api/v1/subscriptions/{subscription.Id}/dead-letters", new RedeliveryRequested(count));
    }

    private static async Task<SubscriptionView> ViewAsync(WebhookStore store, WebhookSubscription s, CancellationToken cancellationToken) =>
        new(s.Id, s.TenantId, s.Url, s.EventTypes, s.Cursor, s.Attempts, s.NextAttemptAt, s.LastError, (await store.DeadLettersAsync(s.Id, false, cancellationToken)).Count, s.CreatedAt);

    private static async Task<WebhookSubscription> FindVisibleAsync(WebhookStore store, Caller caller, Guid id, CancellationToken cancellationToken)
    {
        var subscription = await store.FindAsync(id, cancellationToken);
        return subscription is not null && (caller.TenantId == subscription.TenantId || caller.SeesAllTenants)
            ? subscription
            : throw Problems.NotFound("subscription");
    }


    /// <summary>
    /// The URL must be absolute http(s) without credentials, https when the policy says so, resolve, not
    /// point inside the platform's network unless allowed, and accept connections now.
    /// </summary>
    private static async Task<Uri?> CheckUrlAsync(string? value, WebhookOptions options, Dictionary<string, string[]> errors, CancellationToken cancellationToken)
    {
        if (!Uri.TryCreate(value, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
        {
            errors["url"] = ["must be an absolute http(s) URL"];
            return null;
        }

        if (options.RequireHttps && url.Scheme != "https")
        {
            errors["url"] = ["must use https (the platform's webhook policy)"];
            return null;
        }

        if (url.UserInfo.Length > 0)
        {
            errors["url"] = ["must not carry credentials; use the signature to authenticate deliveries"];
            return null;
        }

        IPAddress[] addresses;
        try
        {
            addresses = await Dns.GetHostAddressesAsync(url.DnsSafeHost, cancellationToken);
        }
        catch (SocketException)
        {
            errors["url"] = [$"the host '{url.Host}' does not resolve"];
            return null;
        }

        if (!options.AllowPrivateAddresses && addresses.Any(IsPrivate))
        {
            errors["url"] = ["must not point at a loopback, private or link-local address"];
            return null;
        }

        using var probe = new TcpClient();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(3));
        try
        {
            await probe.ConnectAsync(addresses, url.Port, timeout.Token);
        }
        catch (Exception exception) when (exception is SocketException or OperationCanceledException)
        {
            errors["url"] = [$"nothing accepts connections at {url.Host}:{url.Port}"];
            return null;
        }

        return url;
    }

    private static bool IsPrivate(IPAddress address)
    {
        if (IPAddress.IsLoopback(address) || address.IsIPv6LinkLocal || address.IsIPv6SiteLocal || address.IsIPv6UniqueLocal)
        {
            return true;
        }

        var bytes = address.MapToIPv4().GetAddressBytes();
        return address.AddressFamily == AddressFamily.InterNetwork && bytes switch
        {
            [10, ..] => true,
            [172, >= 16 and <= 31, ..] => true,
            [192, 168, ..] => true,
            [169, 254, ..] => true,
            [100, >= 64 and <= 127, ..] => true,
            [0, ..] => true,
            _ => false,
        };
    }
}
