using Platform.Hosting;

return await PlatformHost.RunAsync(args, new PlatformServiceDefinition("networking"));
