using MassTransit;
using Platform.Hosting;
using Platform.Telemetry;
using Platform.Telemetry.Audit;

return await PlatformHost.RunAsync(args, new PlatformServiceDefinition(TelemetryService.Name)
{
    Migrations = [AuditLog.Migration],
    ConfigureMessaging = bus => bus.AddConsumer<AuditConsumer, AuditConsumerDefinition>(),
    ConfigureServices = builder => builder.Services.AddSingleton<AuditLog>(),
    MapEndpoints = app => app.MapAudit(),
});
