using MassTransit;
using Platform.Hosting;
using Platform.Telemetry;
using Platform.Telemetry.Audit;
using Platform.Telemetry.Healing;
using Platform.Telemetry.Webhooks;

return await PlatformHost.RunAsync(args, new PlatformServiceDefinition(TelemetryService.Name)
{
    Migrations = [AuditLog.Migration, WebhookStore.Migration, HealingStore.Migration],
    ConfigureMessaging = bus =>
    {
        bus.AddConsumer<AuditConsumer, AuditConsumerDefinition>();
        bus.AddConsumer<HealingWatchdog>();
    },
    ConfigureServices = builder =>
    {
        builder.Services.AddSingleton<AuditLog>();
        builder.Services.AddSingleton<WebhookStore>();
        builder.Services.Configure<WebhookOptions>(builder.Configuration.GetSection(WebhookOptions.Section));
        builder.Services.AddHostedService<WebhookDispatcher>();
        builder.Services.AddSingleton<HealingStore>();
        builder.Services.AddHostedService<HealingSweeper>();
    },
    MapEndpoints = app =>
    {
        app.MapAudit();
        app.MapWebhooks();
        app.MapHealing();
    },
});
