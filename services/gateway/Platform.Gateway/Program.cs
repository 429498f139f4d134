using Platform.Gateway;
using Platform.Hosting;

return await PlatformHost.RunAsync(args, new PlatformServiceDefinition("gateway")
{
    AnswersOnlyTheGateway = false,
    ConfigureServices = builder =>
    {
        var addresses = ServiceRoutes.Addresses(builder.Configuration);
        var (routes, clusters) = ServiceRoutes.Build(addresses);
        // One client for the gateway's own calls to tenancy; the caches that use it live as long as the gateway.
        var tenancy = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
        {
            BaseAddress = addresses["tenancy"],
            Timeout = TimeSpan.FromSeconds(5),
        };
        builder.Services.AddSingleton(provider => ActivatorUtilities.CreateInstance<TenancyKeys>(provider, tenancy));
        builder.Services.AddSingleton(provider => ActivatorUtilities.CreateInstance<TenancyApiKeys>(provider, tenancy));
        GatewayLimits.Add(builder);
        builder.Services.AddReverseProxy()
            .LoadFromMemory(routes, clusters)
            .AddTransforms(transforms => IdentityForwarding.Apply(transforms, transforms.Services.GetRequiredService<PlatformSettings>()));
    },
    MapEndpoints = app =>
    {
        app.UseMiddleware<GatewayAuthentication>();
        GatewayLimits.Use(app);
        app.MapReverseProxy();
    },
});
