using MassTransit;
using Platform.HostAgent;
using Platform.HostAgent.Drivers;
using Platform.HostAgent.Guests;
using Platform.HostAgent.Networking;
using Platform.HostAgent.Telemetry;
using Platform.Hosting;
using Platform.Messaging;

// The host agent: runs machines on this host for provisioning, through the drivers it offers. It keeps no
// database; its record of what it runs is a directory of files (AgentOptions.StatePath).
return await PlatformHost.RunAsync(args, new PlatformServiceDefinition("host-agent")
{
    Parts =
    [
        new BusHosting(bus => bus.AddConsumer<HostCommands, HostCommandsDefinition>()),
    ],
    ConfigureServices = builder =>
    {
        var options = builder.Configuration.GetSection(AgentOptions.Section).Get<AgentOptions>() ?? new AgentOptions();
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(options.Guests);
        builder.Services.AddSingleton<GrantKeys>();
        builder.Services.AddSingleton<DataPlane>();
        builder.Services.AddSingleton<GuestProcesses>();
        builder.Services.AddSingleton<KeptLogs>();
        builder.Services.AddSingleton<GuestReports>();
        builder.Services.AddHostedService(services => services.GetRequiredService<GuestReports>());
        builder.Services.AddSingleton(HostIdentity.Load(options));
        builder.Services.AddSingleton<MachineRecords>();
        builder.Services.AddSingleton(_ => new LocalAddresses(options.StatePath));
        builder.Services.AddSingleton<TenantNetworks>();
        builder.Services.AddSingleton(_ => new HostSnapshots(Path.Combine(options.StatePath, "snapshots")));
        builder.Services.AddSingleton(services => TemplateShelf.Read(options.TemplatesPath, services.GetRequiredService<ILoggerFactory>().CreateLogger<TemplateShelf>()));
        builder.Services.AddHostedService<TemplateShelfWatch>();
        builder.Services.AddSingleton<IEnumerable<IMachineDriver>>(services => DriverSetup.Create(
            options, services.GetRequiredService<TenantNetworks>(), services.GetRequiredService<LocalAddresses>(), services.GetRequiredService<HostSnapshots>(),
            services.GetRequiredService<TemplateShelf>(), services.GetRequiredService<ILoggerFactory>()));
        builder.Services.AddSingleton<HostMachines>();
        builder.Services.AddHostedService<MicroVmPreparation>();
        builder.Services.AddHostedService<ContainerImageWatch>();
        builder.Services.AddSingleton<CapacityReporter>();
        builder.Services.AddHostedService(services => services.GetRequiredService<CapacityReporter>());
        builder.Services.AddHostedService<TunnelReporter>();
        builder.Services.AddHostedService<MetricsReporter>();
        builder.Services.AddHostedService<HealthProber>();
    },
    MapEndpoints = app =>
    {
        app.UseWebSockets();
        app.MapGuests();
    },
});
