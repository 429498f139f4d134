using System.Text.Json;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.EventSourcing;
using Platform.Telemetry.Audit;

namespace Platform.Telemetry.Webhooks;

/// <summary>
/// Delivers the audit log to each subscription, in order and at least once: an event counts as delivered
/// only on a 2xx answer. A failure waits with exponential backoff; after <see cref="WebhookOptions.MaxAttempts"/>
/// the event is dead-lettered and delivery moves on. Woken by new audit entries, polling for due retries.
/// One telemetry instance delivers at a time (an advisory lock), so an event is not sent twice at once.
/// </summary>
public sealed class WebhookDispatcher(
    WebhookStore store, AuditLog audit, IOptions<WebhookOptions> options, TimeProvider time, ILogger<WebhookDispatcher> logger)
    : BackgroundService
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(200);
    private readonly WebhookOptions _options = options.Value;
    private readonly HttpClient _http = new(new SocketsHttpHandler { AllowAutoRedirect = false, ConnectTimeout = TimeSpan.FromSeconds(5) }) { Timeout = options.Value.RequestTimeout };

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var lease = await audit.ListenAsync(stoppingToken);
                try
                {
                    while (!await SessionLease.TryTakeAsync(lease, "platform-webhook-dispatcher", stoppingToken))
                    {
                        await Task.Delay(TimeSpan.FromSeconds(2), stoppingToken);
                    }

                    while (!stoppingToken.IsCancellationRequested)
                    {
                        var due = await store.DueAsync(time.GetUtcNow(), 50, stoppingToken);
                        await Parallel.ForEachAsync(due, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = stoppingToken }, DeliverAsync);
                        await lease.WaitAsync(Poll, stoppingToken);
                    }
                }
                finally
                {
                    await SessionLease.ReleaseAllAsync(lease);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception exception) when (exception is NpgsqlException or TimeoutException)
            {
                logger.LogWarning("Webhook delivery paused: {Reason}", exception.Message);
                await Task.Delay(TimeSpan.FromSeconds(2), stoppingToken);
            }
        }
    }

    public override void Dispose()
    {
        _http.Dispose();
        base.Dispose();
    }

    private async ValueTask DeliverAsync(WebhookSubscription subscription, CancellationToken cancellationToken)
    {
        foreach (var letter in await store.DeadLettersAsync(subscription.Id, pendingRedeliveryOnly: true, cancellationToken))
        {
            var entry = (await audit.ReadAsync(Scope(subscription, new AuditQuery(After: letter.Position - 1, Limit: 1)), cancellationToken)).SingleOrDefault();
            var error = entry is null ? "the event is no longer in the audit log" : await PostAsync(subscription, entry, cancellationToken);
            await (error is null
                ? store.RedeliveredAsync(subscription.Id, letter.Position, time.GetUtcNow(), cancellationToken)
                : store.RedeliveryFailedAsync(subscription.Id, letter.Position, error, cancellationToken));
        }

        var attempts = subscription.Attempts;
        var entries = await audit.ReadAsync(Scope(subscription, new AuditQuery(After: subscription.Cursor, Types: subscription.EventTypes, Limit: 50)), cancellationToken);
        foreach (var entry in entries)
        {
            var error = await PostAsync(subscription, entry, cancellationToken);
            var now = time.GetUtcNow();
            if (error is null)
            {
                await store.DeliveredAsync(subscription.Id, entry.Position, now, cancellationToken);
                attempts = 0;
                continue;
            }

            attempts++;
            if (attempts >= _options.MaxAttempts)
            {
                logger.LogWarning("Webhook {Subscription} dead-lettered event {EventId} after {Attempts} attempts: {Error}", subscription.Id, entry.EventId, attempts, error);
                await store.DeadLetterAsync(subscription.Id, entry.Position, entry.EventId, attempts, error, now, cancellationToken);
                attempts = 0;
                continue;
            }

            await store.FailedAsync(subscription.Id, attempts, now + _options.Backoff(attempts), error, cancellationToken);
            return;
        }
    }

    /// <summary>Sends one event; returns null on a 2xx answer, otherwise what went wrong.</summary>
    private async Task<string?> PostAsync(WebhookSubscription subscription, AuditEntry entry, CancellationToken cancellationToken)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(new WebhookPayload(entry.EventId, entry.Type, entry.OccurredAt, entry.TenantId, entry.Position, entry.Source, entry.Data), PlatformJson.Options);
        var timestamp = time.GetUtcNow().ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var request = new HttpRequestMessage(HttpMethod.Post, subscription.Url) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        request.Headers.Add(WebhookSignature.EventIdHeader, entry.EventId.ToString());
        request.Headers.Add(WebhookSignature.TimestampHeader, timestamp);
        request.Headers.Add(WebhookSignature.SignatureHeader, WebhookSignature.Sign(subscription.Secret, timestamp, body));
        try
        {
            using var response = await _http.SendAsync(request, cancellationToken);
            return response.IsSuccessStatusCode ? null : $"the receiver answered {(int)response.StatusCode}";
        }
        catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return exception is TaskCanceledException ? "the receiver did not answer in time" : $"the receiver is unreachable: {exception.GetBaseException().Message}";
        }
    }

    private static AuditQuery Scope(WebhookSubscription subscription, AuditQuery query) =>
        subscription.TenantId is { } tenant ? query with { TenantId = tenant } : query with { AllTenants = true };
}

/// <summary>What a webhook receives: the event and where it sits in the audit log.</summary>
public sealed record WebhookPayload(Guid EventId, string Type, DateTimeOffset OccurredAt, Guid? TenantId, long Position, string Source, JsonElement Data);
