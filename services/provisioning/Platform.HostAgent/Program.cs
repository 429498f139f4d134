using MassTransit;
using Platform.HostAgent;
using Platform.HostAgent.Drivers;
using Platform.Hosting;
using Platform.Provisioning.Drivers.Sandbox;

// The host agent: runs machines on this host for provisioning, through the drivers it offers. It keeps no
// database; its record of what it runs is a directory of files (AgentOptions.StatePath).
return await PlatformHost.RunAsync(args, new PlatformServiceDefinition("host-agent")
{
    UsesPostgres = false,
    ConfigureMessaging = bus => bus.AddConsumer<HostCommands, HostCommandsDefinition>(),
    ConfigureServices = builder =>
    {
        var options = builder.Configuration.GetSection(AgentOptions.Section).Get<AgentOptions>() ?? new AgentOptions();
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(HostIdentity.Load(options));
        builder.Services.AddSingleton<MachineRecords>();
        var local = new List<IMachineDriver>();
        if (options.Drivers.Contains("sandbox"))
        {
            local.Add(new SandboxDriver(new SandboxRunner(Cgroups.Detect()), options.SandboxMaxProcesses));
        }

        if (options.Drivers.Contains("simulated"))
        {
            local.Add(new SimulatedDriver(options.Simulated, local.SelectMany(d => d.Templates).ToList()));
        }

        foreach (var driver in local)
        {
            builder.Services.AddSingleton(driver);
        }

        builder.Services.AddSingleton<HostMachines>();
        builder.Services.AddHostedService<CapacityReporter>();
    },
});
