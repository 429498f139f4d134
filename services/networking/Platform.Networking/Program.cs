using MassTransit;
using Platform.Hosting;
using Platform.Messaging;
using Platform.Networking.Addressing;
using Platform.Networking.ExitNodes;
using Platform.Networking.Forwards;
using Platform.Networking.Tunnels;

return await PlatformHost.RunAsync(args, new PlatformServiceDefinition("networking")
{
    Parts =
    [
        new EventStoreHosting
        {
            MapEvents = types => types
                .Map<TunnelRequested>(nameof(TunnelRequested))
                .Map<TunnelAbandoned>(nameof(TunnelAbandoned))
                .Map<TunnelDetachRequested>(nameof(TunnelDetachRequested))
                .Map<TunnelReattachRequested>(nameof(TunnelReattachRequested))
                .Map<TunnelAddressLeased>(nameof(TunnelAddressLeased))
                .Map<TunnelAddressReleased>(nameof(TunnelAddressReleased))
                .Map<PortForwardRequested>(nameof(PortForwardRequested))
                .Map<PortForwardAbandoned>(nameof(PortForwardAbandoned))
                .Map<PortForwardRemoveRequested>(nameof(PortForwardRemoveRequested)),
            InlineProjections = [new ExitNodeCatalog("networking"), new TunnelCatalog("networking"), new PortForwardCatalog("networking")],
            Migrations = [ExitNodeCatalog.Migration, TunnelCatalog.Migration, TunnelCatalog.HealthMigration, PortForwardCatalog.Migration, MachineCopies.Migration],
        },
        new BusHosting(bus =>
        {
            bus.AddConsumer<AllocateNetworkConsumer, AllocateNetworkConsumerDefinition>();
            bus.AddConsumer<ReleaseNetworkConsumer, ReleaseNetworkConsumerDefinition>();
            bus.AddConsumer<TunnelCommands, TunnelCommandsDefinition>();
            bus.AddConsumer<TunnelHandshakesConsumer>();
            bus.AddConsumer<PortForwardCommands, PortForwardCommandsDefinition>();
            bus.AddConsumer<MachineCopies, MachineCopiesDefinition>();
        }),
    ],
    ConfigureServices = builder =>
    {
        builder.Services.AddSingleton(NetworkingOptions.Read(builder.Configuration));
        builder.Services.AddSingleton<AddressAllocation>();
        builder.Services.AddHostedService<DefaultPool>();
        builder.Services.AddHostedService<TunnelHealthChecks>();
        builder.Services.AddSingleton<PortForwarding>();
    },
    MapEndpoints = app =>
    {
        app.MapNetworks();
        app.MapExitNodes();
        app.MapTunnels();
        app.MapPortForwards();
    },
});
