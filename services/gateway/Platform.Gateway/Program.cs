using Platform.Gateway;
using Platform.Hosting;

return await PlatformHost.RunAsync(args, new PlatformServiceDefinition("gateway")
{
    UsesPostgres = false,
    UsesRabbitMq = false,
    ConfigureServices = builder =>
    {
        var (routes, clusters) = ServiceRoutes.Read(builder.Configuration);
        builder.Services.AddReverseProxy().LoadFromMemory(routes, clusters);
    },
    MapEndpoints = app => app.MapReverseProxy(),
});
