using System.Diagnostics;
using MassTransit;
using Platform.Contracts;
using Platform.EventSourcing;
using Platform.EventSourcing.Subscriptions;

namespace Platform.Messaging.Relay;

/// <summary>
/// Publishes a service's integration events from its event store (the store is the outbox). The message
/// id is the event id, so consumers' inboxes drop the repeats that at-least-once delivery brings; the
/// checkpoint moves only after the broker has confirmed every publish of the batch. A confirm that does not come within
/// <see cref="ConfirmTimeout"/> fails the batch, which is then published again from the checkpoint, so that a confirm lost
/// with a dropped connection cannot hold the relay still. Each publish continues the trace of the request or message that
/// appended the event (its <see cref="EventMetadata.TraceParent"/>).
/// </summary>
public sealed class EventRelay(IBus bus, string source) : IEventSubscriber
{
    public const string SubscriptionName = "relay";

    public static readonly TimeSpan ConfirmTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The relay's activities ("relay {event type}"), children of the activity that appended the event.</summary>
    public static readonly ActivitySource ActivitySource = new("Platform.Relay");

    public string Name => SubscriptionName;

    public async Task HandleAsync(IReadOnlyList<StoredEvent> events, CancellationToken cancellationToken)
    {
        foreach (var stored in events)
        {
            var type = stored.Data.GetType();
            if (!ContractsAssembly.Contains(type))
            {
                continue;
            }

            using var activity = stored.Metadata.TraceParent is { } parent && ActivityContext.TryParse(parent, null, out var appended)
                ? ActivitySource.StartActivity($"relay {stored.EventType}", ActivityKind.Producer, appended)
                : null;
            using var confirmed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            confirmed.CancelAfter(ConfirmTimeout);
            try
            {
                // The wait ends at the timeout even if a publish does not heed its token (one waiting for a lost
                // connection's recovery): the batch fails and goes out again from the checkpoint, the late copy is a repeat.
                await PublishAsync(stored, type, confirmed.Token).WaitAsync(ConfirmTimeout, cancellationToken);
            }
            catch (Exception exception) when (exception is OperationCanceledException or TimeoutException && !cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"The broker did not confirm event {stored.EventId} (position {stored.Position}) within {ConfirmTimeout.TotalSeconds:0} s.");
            }
        }
    }

    private Task PublishAsync(StoredEvent stored, Type type, CancellationToken cancellationToken) =>
        bus.Publish(stored.Data, type, Pipe.Execute<PublishContext>(context =>
        {
            context.MessageId = stored.EventId;
            context.CorrelationId = stored.Metadata.CorrelationId;
            context.Headers.Set(RelayHeaders.Source, source);
            context.Headers.Set(RelayHeaders.Position, stored.Position);
            context.Headers.Set(RelayHeaders.StreamId, stored.StreamId);
            context.Headers.Set(RelayHeaders.StreamVersion, stored.StreamVersion);
            context.Headers.Set(RelayHeaders.EventType, stored.EventType);
            context.Headers.Set(RelayHeaders.RecordedAt, stored.RecordedAt.ToString("O"));
            if (stored.Metadata.TenantId is { } tenant)
            {
                context.Headers.Set(RelayHeaders.TenantId, tenant);
            }

            if (stored.Metadata.Actor is { } actor)
            {
                context.Headers.Set(RelayHeaders.Actor, actor);
            }
        }), cancellationToken);
}

/// <summary>Headers the relay adds to every published event, for consumers outside .NET too.</summary>
public static class RelayHeaders
{
    /// <summary>The service whose store the event comes from.</summary>
    public const string Source = "Platform-Source";

    /// <summary>The event's position in its source service's store (not a global order across services).</summary>
    public const string Position = "Platform-Position";
    public const string StreamId = "Platform-Stream";

    /// <summary>The event's version in its stream: the stream as it stood after this event is that version of it.</summary>
    public const string StreamVersion = "Platform-Stream-Version";
    public const string EventType = "Platform-Event-Type";
    public const string RecordedAt = "Platform-Recorded-At";
    public const string TenantId = "Platform-Tenant";
    public const string Actor = "Platform-Actor";
}
