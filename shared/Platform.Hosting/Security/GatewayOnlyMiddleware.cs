using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Platform.Hosting.Problems;

namespace Platform.Hosting.Security;

/// <summary>
/// A service answers only the gateway: every request but the health probes must carry the internal
/// credential, or it is refused with 401, whatever identity headers it forges. With the credential, the
/// identity headers become the request's <see cref="Caller"/>.
/// </summary>
internal sealed class GatewayOnlyMiddleware(RequestDelegate next, PlatformSettings settings)
{
    private readonly byte[] _token = Encoding.UTF8.GetBytes(settings.InternalToken ?? "");

    public async Task InvokeAsync(HttpContext context)
    {
        if (context.Request.Path.StartsWithSegments("/health"))
        {
            await next(context);
            return;
        }

        var presented = Encoding.UTF8.GetBytes(context.Request.Headers[IdentityHeaders.InternalToken].ToString());
        if (_token.Length == 0 || !CryptographicOperations.FixedTimeEquals(presented, _token))
        {
            throw new ProblemException(ProblemTypes.Unauthorized, StatusCodes.Status401Unauthorized, "Services answer only the gateway.", "Call the API through the gateway.");
        }

        var subject = context.Request.Headers[IdentityHeaders.Subject].ToString();
        var role = context.Request.Headers[IdentityHeaders.Role].ToString();
        if (subject.Length > 0 && Roles.All.Contains(role))
        {
            var tenant = Guid.TryParse(context.Request.Headers[IdentityHeaders.TenantId].ToString(), out var id) ? id : (Guid?)null;
            context.Features.Set(new Caller(subject, role, tenant));
        }

        await next(context);
    }
}
