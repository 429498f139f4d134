using Platform.Gateway;
using Platform.Hosting;

return await PlatformHost.RunAsync(args, new PlatformServiceDefinition("gateway")
{
    UsesPostgres = false,
    UsesRabbitMq = false,
    AnswersOnlyTheGateway = false,
    ConfigureServices = builder =>
    {
        var addresses = ServiceRoutes.Addresses(builder.Configuration);
        var (routes, clusters) = ServiceRoutes.Build(addresses);
        builder.Services.AddHttpClient<TenancyKeys>(client => client.BaseAddress = addresses["tenancy"]);
        builder.Services.AddReverseProxy()
            .LoadFromMemory(routes, clusters)
            .AddTransforms(transforms => IdentityForwarding.Apply(transforms, transforms.Services.GetRequiredService<PlatformSettings>()));
    },
    MapEndpoints = app =>
    {
        app.UseMiddleware<GatewayAuthentication>();
        app.MapReverseProxy();
    },
});
