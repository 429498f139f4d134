using Microsoft.IdentityModel.JsonWebTokens;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;

namespace Platform.Gateway;

/// <summary>
/// Every route needs a valid bearer token or API key but the few that cannot: logging in, each service's
/// info and OpenAPI document, the public key set. The caller it proves is what the gateway forwards; whatever identity a client claims in headers is
/// removed before that (<see cref="IdentityForwarding"/>).
/// </summary>
public sealed class GatewayAuthentication(RequestDelegate next, TenancyKeys keys, TenancyApiKeys apiKeys, TimeProvider time)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var caller = await AuthenticateAsync(context.Request, context.RequestAborted);
        if (caller is not null)
        {
            context.Features.Set(caller);
        }
        else if (!IsPublic(context.Request))
        {
            throw Problems.Unauthorized("Send 'Authorization: Bearer <token>' with a token from POST /api/v1/auth/token, or 'Authorization: ApiKey <key>'.");
        }

        await next(context);
    }

    public const string ApiKeyHeader = "X-Api-Key";

    private async Task<Caller?> AuthenticateAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        var authorization = request.Headers.Authorization.ToString();
        var apiKey = authorization.StartsWith("ApiKey ", StringComparison.OrdinalIgnoreCase)
            ? authorization["ApiKey ".Length..].Trim()
            : request.Headers[ApiKeyHeader].ToString();
        if (apiKey.Length > 0)
        {
            return await apiKeys.ResolveAsync(apiKey, cancellationToken)
                ?? throw Problems.Unauthorized("The API key is unknown, revoked or expired.");
        }

        if (!authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var token = authorization["Bearer ".Length..].Trim();
        string? keyId;
        try
        {
            keyId = new JsonWebToken(token).Kid;
        }
        catch (ArgumentException)
        {
            throw Problems.Unauthorized("The bearer token is not a JWT.");
        }

        return await AccessTokens.ValidateAsync(token, await keys.GetAsync(keyId, cancellationToken), time.GetUtcNow())
            ?? throw Problems.Unauthorized("The bearer token is invalid or expired.");
    }

    private static bool IsPublic(HttpRequest request)
    {
        var path = request.Path.Value ?? "";
        return request.Path.StartsWithSegments("/health")
            || (HttpMethods.IsPost(request.Method) && path.Equals("/api/v1/auth/token", StringComparison.OrdinalIgnoreCase))
            || (HttpMethods.IsGet(request.Method) && path.Equals("/api/v1/tenancy/jwks", StringComparison.OrdinalIgnoreCase))
            || (HttpMethods.IsGet(request.Method) && path.StartsWith("/api/v1/", StringComparison.OrdinalIgnoreCase) && path.Count(c => c == '/') == 4
                && (path.EndsWith("/info", StringComparison.OrdinalIgnoreCase) || path.EndsWith("/openapi.json", StringComparison.OrdinalIgnoreCase)));
    }
}
