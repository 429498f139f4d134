using MassTransit;
using Platform.Hosting;
using Platform.Provisioning.Hosts;
using Platform.Provisioning.Machines;

return await PlatformHost.RunAsync(args, new PlatformServiceDefinition("provisioning")
{
    MapEvents = types => types.Map<IdempotencyKeyRecorded>(nameof(IdempotencyKeyRecorded)),
    InlineProjections = [new MachineCatalog("provisioning"), new HostCatalog("provisioning")],
    Migrations = [MachineCatalog.Migration, HostCatalog.Migration, HostCatalog.VersionMigration],
    ConfigureMessaging = bus =>
    {
        bus.AddConsumer<MachineLifecycle, MachineLifecycleDefinition>();
        bus.AddConsumer<HostReports, HostReportsDefinition>();
        bus.AddConsumer<MachineCommands>();
        bus.AddConsumer<HostCapacityReportedConsumer>();
        bus.AddConsumer<HostGuardrailsSetConsumer>();
    },
    ConfigureServices = builder =>
    {
        builder.Services.AddSingleton<HostDirectory>();
        builder.Services.AddSingleton<MachineReader>();
        builder.Services.AddSingleton<MachineCreation>();
        builder.Services.AddSingleton<MachineActions>();
        builder.Services.AddSingleton<MachineWatch>();
        builder.Services.AddHostedService(services => services.GetRequiredService<MachineWatch>());
    },
    MapEndpoints = app =>
    {
        app.MapMachines();
        app.MapHosts();
    },
});
