using MassTransit;
using Platform.Hosting;
using Platform.Networking.Addressing;
using Platform.Networking.ExitNodes;

return await PlatformHost.RunAsync(args, new PlatformServiceDefinition("networking")
{
    InlineProjections = [new ExitNodeCatalog("networking")],
    Migrations = [ExitNodeCatalog.Migration],
    ConfigureMessaging = bus =>
    {
        bus.AddConsumer<AllocateNetworkConsumer, AllocateNetworkConsumerDefinition>();
        bus.AddConsumer<ReleaseNetworkConsumer, ReleaseNetworkConsumerDefinition>();
    },
    ConfigureServices = builder =>
    {
        builder.Services.AddSingleton(NetworkingOptions.Read(builder.Configuration));
        builder.Services.AddSingleton<AddressAllocation>();
        builder.Services.AddHostedService<DefaultPool>();
    },
    MapEndpoints = app =>
    {
        app.MapNetworks();
        app.MapExitNodes();
    },
});
