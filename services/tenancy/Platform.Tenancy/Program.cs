using MassTransit;
using Platform.Hosting;
using Platform.Tenancy;
using Platform.Tenancy.ApiKeys;
using Platform.Tenancy.Auth;
using Platform.Tenancy.Bootstrap;
using Platform.Tenancy.Directory;
using Platform.Tenancy.Quotas;
using Platform.Tenancy.Tenants;
using Platform.Tenancy.Users;

return await PlatformHost.RunAsync(args, new PlatformServiceDefinition(TenancyService.Name)
{
    MapEvents = types => types
        .Map<UserPasswordHashSet>(nameof(UserPasswordHashSet))
        .Map<ApiKeyHashSet>(nameof(ApiKeyHashSet)),
    InlineProjections = [new TenancyDirectory(TenancyService.Schema)],
    Migrations = [TenancyDirectory.Migration, TenancyDirectory.ApiKeysMigration, SigningKeys.Migration],
    ConfigureMessaging = bus =>
    {
        bus.AddConsumer<ReserveQuotaConsumer, ReserveQuotaConsumerDefinition>();
        bus.AddConsumer<ReleaseQuotaConsumer, ReleaseQuotaConsumerDefinition>();
    },
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
    },
});
