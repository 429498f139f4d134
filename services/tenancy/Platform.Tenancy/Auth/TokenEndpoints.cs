using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;
using Platform.Tenancy.Users;

namespace Platform.Tenancy.Auth;

public sealed record TokenRequest(string? Username, string? Password);

public sealed record TokenResponse(string AccessToken, string TokenType, DateTimeOffset ExpiresAt);

public sealed record SigningKeyRotated(string KeyId);

public static class TokenEndpoints
{
    public static void MapAuth(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/v1/auth/token", IssueAsync);
        app.MapPost("/api/v1/auth/signing-keys/rotate", RotateAsync);
        app.MapGet("/api/v1/tenancy/jwks", async (SigningKeys keys, CancellationToken cancellationToken) =>
            TypedResults.Ok(new SigningKeySet((await keys.PublishedAsync(cancellationToken)).Select(k => k.ToPublicJwk()).ToArray())));
    }

    private static async Task<Ok<TokenResponse>> IssueAsync(
        TokenRequest? request, NpgsqlDataSource dataSource, Passwords passwords, SigningKeys keys, TimeProvider time, CancellationToken cancellationToken)
    {
        var user = request?.Username is { Length: > 0 } username ? await UserEndpoints.FindByUsernameAsync(username, dataSource, cancellationToken) : null;
        if (!passwords.Verify(user?.PasswordHash, request?.Password ?? "", out _) || user is null)
        {
            throw Problems.Unauthorized("Unknown username or wrong password.");
        }

        var now = time.GetUtcNow();
        var token = AccessTokens.Issue(await keys.CurrentAsync(cancellationToken), user.View.Id.ToString(), user.View.Username, user.View.Role, user.View.TenantId, now, SigningKeys.TokenLifetime);
        return TypedResults.Ok(new TokenResponse(token, "Bearer", now + SigningKeys.TokenLifetime));
    }

    private static async Task<Ok<SigningKeyRotated>> RotateAsync(Caller caller, SigningKeys keys, CancellationToken cancellationToken)
    {
        if (!caller.IsPlatformAdmin)
        {
            throw Problems.Forbidden("Only a platform-admin rotates signing keys.");
        }

        return TypedResults.Ok(new SigningKeyRotated((await keys.RotateAsync(cancellationToken)).KeyId));
    }
}
