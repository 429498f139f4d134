using System.Reflection;
using Microsoft.AspNetCore.Http;

namespace Platform.Hosting.Security;

/// <summary>
/// Who is calling, as the gateway established it: the user or API key, its role and its tenant (none for a
/// platform-admin). Services never read identity from anything else; an endpoint takes it as a parameter.
/// </summary>
public sealed record Caller(string Subject, string Role, Guid? TenantId)
{
    public bool IsPlatformAdmin => Role == Roles.PlatformAdmin;

    /// <summary>A platform-admin of no tenant: sees every tenant's resources and the platform's own.</summary>
    public bool SeesAllTenants => IsPlatformAdmin && TenantId is null;

    /// <summary>Whether the caller may act on <paramref name="tenantId"/>'s resources at all (platform-admins may act on every tenant).</summary>
    public bool CanSee(Guid tenantId) => IsPlatformAdmin || TenantId == tenantId;

    /// <summary>Refuses (403) a caller whose role only reads; <paramref name="what"/> names what it may read but not change.</summary>
    public void RequireMutate(string what)
    {
        if (!Roles.CanMutate(Role))
        {
            throw Problems.Problems.Forbidden($"A {Role} reads {what} but cannot change them.");
        }
    }

    /// <summary>Minimal APIs bind it from the identity headers the gateway set; a request without them is refused with 401.</summary>
    public static ValueTask<Caller?> BindAsync(HttpContext context, ParameterInfo parameter) =>
        ValueTask.FromResult<Caller?>(context.Features.Get<Caller>() ?? throw new UnauthenticatedException());
}

/// <summary>The request reached an endpoint that needs a caller, without one.</summary>
public sealed class UnauthenticatedException() : Exception("The request carries no authenticated caller.");

public static class Roles
{
    public const string PlatformAdmin = "platform-admin";
    public const string TenantAdmin = "tenant-admin";
    public const string Member = "member";
    public const string Viewer = "viewer";

    public static IReadOnlyList<string> All { get; } = [PlatformAdmin, TenantAdmin, Member, Viewer];

    public static IReadOnlyList<string> TenantRoles { get; } = [TenantAdmin, Member, Viewer];

    /// <summary>Viewers read; every other role may change what its tenant owns.</summary>
    public static bool CanMutate(string role) => role is PlatformAdmin or TenantAdmin or Member;
}
