using Microsoft.AspNetCore.Http.HttpResults;
using Platform.Contracts.Telemetry;
using Platform.EventSourcing;
using Platform.Hosting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;

namespace Platform.Telemetry.BrokerSubscriptions;

/// <summary>How a subscriber reaches its queue: <see cref="Url"/> carries the password only in the creation's answer.</summary>
public sealed record AmqpAccess(string Url, string Queue, string Username, string? Password);

/// <summary>The one answer that shows the password.</summary>
public sealed record CreatedBrokerSubscription(Guid Id, Guid? TenantId, string Kind, AmqpAccess Amqp, DateTimeOffset CreatedAt);

public sealed record BrokerSubscriptionView(Guid Id, Guid? TenantId, string Kind, AmqpAccess Amqp, DateTimeOffset CreatedAt);

/// <summary>
/// <c>POST /api/v1/subscriptions {"kind": "amqp"}</c> and its reads and deletion (routed by <see cref="Webhooks.WebhookEndpoints"/>,
/// which owns the route). The broker's side is made first and removed again if the record cannot be written; deletion
/// removes the broker's side first, so a subscription is never recorded without its queue nor gone while its user can
/// still read.
/// </summary>
public static class BrokerSubscriptionEndpoints
{
    public const string Kind = "amqp";

    public static async Task<Created<CreatedBrokerSubscription>> CreateAsync(
        Caller caller, HttpContext http, EventStore events, BrokerSubscriptionStore store, BrokerAccounts accounts, TimeProvider time, CancellationToken cancellationToken)
    {
        if (!accounts.Configured)
        {
            throw Problems.Conflict("This platform has no broker management API configured (Platform:Telemetry:Broker:ManagementUrl): subscriptions of kind 'amqp' are not available.");
        }

        var now = time.GetUtcNow();
        var subscription = BrokerSubscription.For(Guid.CreateVersion7(now), caller.TenantId, now);
        var password = await accounts.CreateAsync(subscription, cancellationToken);
        try
        {
            await using var session = await events.BeginSessionAsync(cancellationToken);
            await store.InsertAsync(session.Connection, session.Transaction, subscription, cancellationToken);
            session.Append($"broker-subscription-{subscription.Id}", ExpectedVersion.NoStream,
                [new BrokerSubscriptionCreated(subscription.Id, subscription.TenantId, subscription.Queue, subscription.Username, now)],
                new EventMetadata(RequestCorrelation.Of(http), TenantId: caller.TenantId?.ToString(), Actor: caller.Subject));
            await session.CommitAsync(cancellationToken);
        }
        catch
        {
            await accounts.DeleteAsync(subscription, CancellationToken.None);
            throw;
        }

        return TypedResults.Created($"/api/v1/subscriptions/{subscription.Id}",
            new CreatedBrokerSubscription(subscription.Id, subscription.TenantId, Kind, Access(accounts, subscription, password), now));
    }

    public static BrokerSubscriptionView View(BrokerAccounts accounts, BrokerSubscription subscription) =>
        new(subscription.Id, subscription.TenantId, Kind, Access(accounts, subscription, null), subscription.CreatedAt);

    public static async Task DeleteAsync(
        BrokerSubscription subscription, Caller caller, HttpContext http, EventStore events, BrokerSubscriptionStore store, BrokerAccounts accounts, TimeProvider time, CancellationToken cancellationToken)
    {
        caller.RequireMutate("subscriptions");
        await accounts.DeleteAsync(subscription, cancellationToken);
        var now = time.GetUtcNow();
        await using var session = await events.BeginSessionAsync(cancellationToken);
        await store.DeleteAsync(session.Connection, session.Transaction, subscription.Id, now, cancellationToken);
        session.Append($"broker-subscription-{subscription.Id}", ExpectedVersion.Any, [new BrokerSubscriptionDeleted(subscription.Id, subscription.TenantId, now)],
            new EventMetadata(RequestCorrelation.Of(http), TenantId: subscription.TenantId?.ToString(), Actor: caller.Subject));
        await session.CommitAsync(cancellationToken);
    }

    /// <summary>The caller's (or, for a platform-admin without a tenant, any) subscription; null when there is none to see.</summary>
    public static async Task<BrokerSubscription?> FindVisibleAsync(BrokerSubscriptionStore store, Caller caller, Guid id, CancellationToken cancellationToken) =>
        await store.FindAsync(id, cancellationToken) is { } subscription && (caller.TenantId == subscription.TenantId || caller.SeesAllTenants) ? subscription : null;

    private static AmqpAccess Access(BrokerAccounts accounts, BrokerSubscription subscription, string? password) =>
        new(accounts.UrlFor(subscription, password), subscription.Queue, subscription.Username, password);
}
