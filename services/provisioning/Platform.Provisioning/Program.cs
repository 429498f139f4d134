using MassTransit;
using Platform.Hosting;
using Platform.Messaging;
using Platform.Provisioning.Hosts;
using Platform.Messaging.Sagas;
using Platform.Provisioning.Machines;
using Platform.Provisioning.Machines.Guests;
using Platform.Provisioning.Machines.Saga;
using Platform.Provisioning.Snapshots;

return await PlatformHost.RunAsync(args, new PlatformServiceDefinition("provisioning")
{
    Parts =
    [
        new EventStoreHosting
        {
            MapEvents = types => types.Map<IdempotencyKeyRecorded>(nameof(IdempotencyKeyRecorded)),
            InlineProjections = [new MachineCatalog("provisioning"), new HostCatalog("provisioning"), new SnapshotCatalog("provisioning")],
            Migrations =
            [
                MachineCatalog.Migration, MachineCatalog.StepsMigration, HostCatalog.Migration, HostCatalog.VersionMigration, HostCatalog.DiskMigration, ExitNodeCopies.Migration, MachineWork.Migration,
                SnapshotCatalog.Migration,
            ],
        },
        new BusHosting(bus =>
        {
            bus.AddSagaStateMachine<MachineSaga, MachineSagaState, MachineSagaDefinition>().PostgresRepository();
            bus.AddConsumer<MachineLifecycle, MachineLifecycleDefinition>();
            bus.AddConsumer<HostReports, HostReportsDefinition>();
            bus.AddConsumer<MachineCommands>();
            bus.AddConsumer<HostCapacityReportedConsumer>();
            bus.AddConsumer<GrantKeyDistribution>();
            bus.AddConsumer<HostGuardrailsSetConsumer>();
            bus.AddConsumer<ExitNodeCopies>();
            bus.AddConsumer<MachineWorkConsumer>();
            bus.AddConsumer<SnapshotFlow, SnapshotFlowDefinition>();
        }),
    ],
    ConfigureServices = builder =>
    {
        builder.Services.AddSingleton(MachineSagaOptions.Read(builder.Configuration));
        builder.Services.AddSingleton<MachineRecorder>();
        builder.Services.AddHostedService<MachineSagaDeadlines>();
        builder.Services.AddSingleton<HostDirectory>();
        builder.Services.AddSingleton<ExitNodeCopies>();
        builder.Services.AddSingleton<MachineReader>();
        builder.Services.AddSingleton<SnapshotReader>();
        builder.Services.AddSingleton(SnapshotOptions.Read(builder.Configuration));
        builder.Services.AddHostedService<SnapshotDeadlines>();
        builder.Services.AddSingleton(MachineCreationOptions.Read(builder.Configuration));
        builder.Services.AddSingleton<PlacementTurns>();
        builder.Services.AddSingleton<MachineCreation>();
        builder.Services.AddSingleton<QuotaCheck>();
        builder.Services.AddHostedService(services => services.GetRequiredService<QuotaCheck>());
        builder.Services.AddSingleton<MachineActions>();
        builder.Services.AddSingleton<MachineWatch>();
        builder.Services.AddSingleton(MachineExpiryOptions.Read(builder.Configuration));
        builder.Services.AddSingleton<MachineWork>();
        builder.Services.AddHostedService<MachineExpirySweeper>();
        builder.Services.AddHostedService(services => services.GetRequiredService<MachineWatch>());
        builder.Services.AddSingleton<MachineGrantSigner>();
        builder.Services.AddHttpForwarder();
    },
    MapEndpoints = app =>
    {
        app.MapMachines();
        app.MapSnapshots();
        app.MapGuests();
        app.MapHosts();
    },
});
