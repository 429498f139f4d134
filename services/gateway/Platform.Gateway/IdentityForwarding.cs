using Platform.Hosting;
using Platform.Hosting.Security;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace Platform.Gateway;

/// <summary>
/// What the gateway tells a service about a request: every <c>X-Platform-*</c> header the client sent is
/// dropped, then the internal credential and the authenticated caller's identity are added.
/// </summary>
public static class IdentityForwarding
{
    public static void Apply(TransformBuilderContext builder, PlatformSettings settings)
    {
        builder.AddRequestTransform(context =>
        {
            var headers = context.ProxyRequest.Headers;
            foreach (var name in headers.Select(h => h.Key).Where(IsPlatformHeader).ToArray())
            {
                headers.Remove(name);
            }

            // The gateway has checked the credentials; services never see them.
            headers.Authorization = null;
            headers.Remove(GatewayAuthentication.ApiKeyHeader);

            headers.Add(IdentityHeaders.InternalToken, settings.InternalToken);
            if (context.HttpContext.Features.Get<Caller>() is { } caller)
            {
                headers.Add(IdentityHeaders.Subject, caller.Subject);
                headers.Add(IdentityHeaders.Role, caller.Role);
                if (caller.TenantId is { } tenant)
                {
                    headers.Add(IdentityHeaders.TenantId, tenant.ToString());
                }
            }

            return ValueTask.CompletedTask;
        });
    }

    private static bool IsPlatformHeader(string name) => name.StartsWith(IdentityHeaders.Prefix, StringComparison.OrdinalIgnoreCase);
}
