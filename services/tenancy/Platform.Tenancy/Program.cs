using MassTransit;
using Platform.Hosting;
using Platform.Messaging;
using Platform.Tenancy;
using Platform.Tenancy.ApiKeys;
using Platform.Tenancy.Auth;
using Platform.Tenancy.Bootstrap;
using Platform.Tenancy.Directory;
using Platform.Tenancy.Guardrails;
using Platform.Tenancy.Inventory;
using Platform.Tenancy.Quotas;
using Platform.Tenancy.Tenants;
using Platform.Tenancy.Users;

return await PlatformHost.RunAsync(args, new PlatformServiceDefinition(TenancyService.Name)
{
    Parts =
    [
        new EventStoreHosting
        {
            MapEvents = types => types
                .Map<UserPasswordHashSet>(nameof(UserPasswordHashSet))
                .Map<ApiKeyHashSet>(nameof(ApiKeyHashSet)),
            InlineProjections = [new TenancyDirectory(TenancyService.Schema), new MachineInventory(TenancyService.Schema)],
            Migrations = [TenancyDirectory.Migration, TenancyDirectory.ApiKeysMigration, SigningKeys.Migration, MachineInventory.Migration],
        },
        new BusHosting(bus =>
        {
            bus.AddConsumer<ReserveQuotaConsumer, ReserveQuotaConsumerDefinition>();
            bus.AddConsumer<ReleaseQuotaConsumer, ReleaseQuotaConsumerDefinition>();
            bus.AddConsumer<CheckQuotaConsumer>();
            bus.AddConsumer<RegisterMachineConsumer>();
            bus.AddConsumer<UnregisterMachineConsumer>();
        }),
    ],
    ConfigureServices = builder =>
    {
        builder.Services.AddSingleton<TenancyEvents>();
        builder.Services.AddSingleton<Passwords>();
        builder.Services.AddSingleton<SigningKeys>();
        builder.Services.AddSingleton<QuotaStore>();
        builder.Services.AddHostedService<FirstAdmin>();
    },
    MapEndpoints = app =>
    {
        app.MapAuth();
        app.MapTenants();
        app.MapUsers();
        app.MapApiKeys();
        app.MapQuotas();
        app.MapGuardrails();
        MachineInventory.MapInventory(app);
    },
});
