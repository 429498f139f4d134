using MassTransit;
using Platform.Hosting;
using Platform.Networking.Addressing;

return await PlatformHost.RunAsync(args, new PlatformServiceDefinition("networking")
{
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
    MapEndpoints = app => app.MapNetworks(),
});
