using MassTransit;
using Platform.Hosting;
using Platform.Messaging;
using Platform.Telemetry;
using Platform.Telemetry.Audit;
using Platform.Telemetry.BrokerSubscriptions;
using Platform.Telemetry.Costs;
using Platform.Telemetry.Healing;
using Platform.Telemetry.Health;
using Platform.Telemetry.Machines;
using Platform.Telemetry.Metrics;
using Platform.Telemetry.Webhooks;

return await PlatformHost.RunAsync(args, new PlatformServiceDefinition(TelemetryService.Name)
{
    Parts =
    [
        new EventStoreHosting
        {
            Migrations = [AuditLog.Migration, AuditLog.StreamVersionMigration, WebhookStore.Migration, BrokerSubscriptionStore.Migration, HealingStore.Migration, HealingStore.ActionMigration, HealingStore.ExitNodeMigration, MachineLedger.Migration, MetricStore.Migration, HealthStore.Migration],
        },
        new BusHosting(bus =>
        {
            bus.AddConsumer<AuditConsumer, AuditConsumerDefinition>();
            bus.AddConsumer<HealingWatchdog>();
            bus.AddConsumer<MachineLedgerConsumer, MachineLedgerConsumerDefinition>();
            bus.AddConsumer<MetricsConsumer>();
            bus.AddConsumer<HealthConsumer>();
        }),
    ],
    ConfigureServices = builder =>
    {
        builder.Services.AddSingleton<AuditLog>();
        builder.Services.AddSingleton<WebhookStore>();
        builder.Services.Configure<WebhookOptions>(builder.Configuration.GetSection(WebhookOptions.Section));
        builder.Services.AddHostedService<WebhookDispatcher>();
        builder.Services.AddSingleton<BrokerSubscriptionStore>();
        builder.Services.AddSingleton<BrokerAccounts>();
        builder.Services.Configure<BrokerSubscriptionOptions>(builder.Configuration.GetSection(BrokerSubscriptionOptions.Section));
        builder.Services.AddSingleton<HealingStore>();
        builder.Services.AddHostedService<HealingSweeper>();
        builder.Services.AddSingleton<MachineLedger>();
        builder.Services.AddSingleton<MetricStore>();
        builder.Services.Configure<MetricsOptions>(builder.Configuration.GetSection(MetricsOptions.Section));
        builder.Services.AddHostedService<MetricsRollup>();
        builder.Services.AddSingleton<PriceTable>();
        builder.Services.AddSingleton<HealthStore>();
    },
    MapEndpoints = app =>
    {
        app.MapAudit();
        app.MapWebhooks();
        app.MapHealing();
        app.MapMetrics();
        app.MapCosts();
        app.MapHealth();
    },
});
