using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Platform.Testing;

/// <summary>A webhook endpoint on loopback that records every delivery and fails the ones it is told to.</summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _failuresLeft;

    private WebhookReceiver(WebApplication app, Uri url)
    {
        _app = app;
        Url = url;
    }

    public Uri Url { get; }

    /// <summary>Every delivery, failed ones included, in arrival order.</summary>
    public ConcurrentQueue<Delivery> Deliveries { get; } = new();

    /// <summary>The deliveries answered 2xx.</summary>
    public IReadOnlyList<Delivery> Accepted => Deliveries.Where(d => d.Accepted).ToArray();

    /// <summary>While set, every delivery is refused with 500.</summary>
    public bool AlwaysFail { get; set; }

    /// <summary>Refuses the next <paramref name="count"/> deliveries with 503, as a receiver that is down for a while.</summary>
    public void FailNext(int count) => Interlocked.Exchange(ref _failuresLeft, count);

    public static async Task<WebhookReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        WebhookReceiver? receiver = null;
        app.MapPost("/hook", async (HttpContext context) =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            var refuse = receiver!.AlwaysFail || Interlocked.Decrement(ref receiver._failuresLeft) >= 0;
            receiver.Deliveries.Enqueue(new Delivery(
                context.Request.Headers["X-Platform-Event-Id"].ToString(),
                context.Request.Headers["X-Platform-Timestamp"].ToString(),
                context.Request.Headers["X-Platform-Signature"].ToString(),
                body.ToArray(),
                !refuse));
            return refuse ? Results.StatusCode(receiver.AlwaysFail ? 500 : 503) : Results.Ok();
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        receiver = new WebhookReceiver(app, new Uri(new Uri(address), "/hook"));
        return receiver;
    }

    public ValueTask DisposeAsync() => _app.DisposeAsync();

    public sealed record Delivery(string EventId, string Timestamp, string Signature, byte[] Body, bool Accepted);
}
