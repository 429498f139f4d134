namespace Platform.Hosting.Security;

/// <summary>
/// The headers that carry identity from the gateway to the services. The gateway removes every
/// <c>X-Platform-*</c> header a client sends before it sets these, and services trust them only next to
/// the internal credential only the gateway holds.
/// </summary>
public static class IdentityHeaders
{
    public const string Prefix = "X-Platform-";
    public const string InternalToken = "X-Platform-Internal-Token";
    public const string Subject = "X-Platform-Subject";
    public const string Role = "X-Platform-Role";
    public const string TenantId = "X-Platform-Tenant";
}
