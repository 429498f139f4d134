using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;
using Platform.Contracts.Tenancy;
using Platform.Hosting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;
using Platform.Tenancy.Directory;
using Platform.Tenancy.Tenants;

namespace Platform.Tenancy.Users;

public sealed record CreateUserRequest(string? Username, string? Password, string? Role);

public sealed record ChangePasswordRequest(string? CurrentPassword, string? NewPassword);

public sealed record UserView(Guid Id, Guid? TenantId, string Username, string Role, DateTimeOffset CreatedAt);

public static partial class UserEndpoints
{
    public static void MapUsers(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/v1/tenants/{tenantId:guid}/users", CreateAsync);
        app.MapGet("/api/v1/tenants/{tenantId:guid}/users", ListAsync);
        app.MapGet("/api/v1/users/me", MeAsync);
        app.MapPost("/api/v1/users/me/password", ChangePasswordAsync);
    }

    private static async Task<Created<UserView>> CreateAsync(
        Guid tenantId, CreateUserRequest? request, Caller caller, NpgsqlDataSource dataSource, TenancyEvents events, Passwords passwords, TimeProvider time, CancellationToken cancellationToken)
    {
        await TenantEndpoints.FindVisibleAsync(dataSource, caller, tenantId, cancellationToken);
        if (!caller.IsPlatformAdmin && caller.Role != Roles.TenantAdmin)
        {
            throw Problems.Forbidden("Only a tenant-admin or a platform-admin creates users.");
        }

        var errors = new Dictionary<string, string[]>();
        if (request?.Username is not { } username || !Username().IsMatch(username))
        {
            errors["username"] = ["must be 3 to 64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit"];
        }

        if (request?.Role is not { } role || !Roles.TenantRoles.Contains(role))
        {
            errors["role"] = [$"must be one of {string.Join(", ", Roles.TenantRoles)}"];
        }

        if (PasswordPolicy.Check(request?.Password, request?.Username) is { Count: > 0 } weak)
        {
            errors["password"] = [.. weak];
        }

        if (errors.Count > 0)
        {
            throw Problems.Validation(errors);
        }

        var now = time.GetUtcNow();
        var created = new UserCreated(Guid.CreateVersion7(now), tenantId, request!.Username!, request.Role!, now);
        await events.AppendAsync(
            $"user-{created.UserId}",
            [created, new UserPasswordHashSet(created.UserId, passwords.Hash(request.Password!), now)],
            caller,
            tenantId,
            $"The username '{created.Username}' is taken.",
            cancellationToken);
        return TypedResults.Created($"/api/v1/users/{created.UserId}", new UserView(created.UserId, tenantId, created.Username, created.Role, now));
    }

    private static async Task<Ok<Page<UserView>>> ListAsync(Guid tenantId, Caller caller, NpgsqlDataSource dataSource, int? limit, string? cursor, CancellationToken cancellationToken)
    {
        await TenantEndpoints.FindVisibleAsync(dataSource, caller, tenantId, cancellationToken);
        var (take, after) = Paging.Read(limit, cursor);
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM {TenancyService.Schema}.users WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3");
        command.Parameters.Add(new NpgsqlParameter { Value = tenantId });
        command.Parameters.Add(new NpgsqlParameter { Value = after });
        command.Parameters.Add(new NpgsqlParameter { Value = take + 1 });
        return TypedResults.Ok(Paging.Of((await ReadAsync(command, cancellationToken)).Select(u => u.View).ToArray(), take, u => u.Id));
    }

    private static async Task<Ok<UserView>> MeAsync(Caller caller, NpgsqlDataSource dataSource, CancellationToken cancellationToken) =>
        TypedResults.Ok((await FindCallerAsync(caller, dataSource, cancellationToken)).View);

    private static async Task<NoContent> ChangePasswordAsync(
        ChangePasswordRequest? request, Caller caller, NpgsqlDataSource dataSource, TenancyEvents events, Passwords passwords, TimeProvider time, CancellationToken cancellationToken)
    {
        var user = await FindCallerAsync(caller, dataSource, cancellationToken);
        if (!passwords.Verify(user.PasswordHash, request?.CurrentPassword ?? "", out _))
        {
            throw Problems.Invalid("currentPassword", "is not the current password");
        }

        if (PasswordPolicy.Check(request?.NewPassword, user.View.Username) is { Count: > 0 } weak)
        {
            throw Problems.Validation(new Dictionary<string, string[]> { ["newPassword"] = [.. weak] });
        }

        var now = time.GetUtcNow();
        await events.AppendAsync(
            $"user-{user.View.Id}",
            [new UserPasswordHashSet(user.View.Id, passwords.Hash(request!.NewPassword!), now), new UserPasswordChanged(user.View.Id, user.View.TenantId, now)],
            caller,
            user.View.TenantId,
            "The user changed concurrently.",
            cancellationToken);
        return TypedResults.NoContent();
    }

    private const string Columns = "id, tenant_id, username, role, created_at, password_hash";

    internal static async Task<StoredUser> FindCallerAsync(Caller caller, NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        if (!caller.Subject.StartsWith("user:", StringComparison.Ordinal) || !Guid.TryParse(caller.Subject["user:".Length..], out var userId))
        {
            throw Problems.NotFound("user");
        }

        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM {TenancyService.Schema}.users WHERE id = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = userId });
        return (await ReadAsync(command, cancellationToken)).SingleOrDefault() ?? throw Problems.NotFound("user");
    }

    internal static async Task<StoredUser?> FindByUsernameAsync(string username, NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM {TenancyService.Schema}.users WHERE username = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = username });
        return (await ReadAsync(command, cancellationToken)).SingleOrDefault();
    }

    private static async Task<List<StoredUser>> ReadAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        var users = new List<StoredUser>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            users.Add(new StoredUser(
                new UserView(reader.GetGuid(0), reader.IsDBNull(1) ? null : reader.GetGuid(1), reader.GetString(2), reader.GetString(3), reader.GetFieldValue<DateTimeOffset>(4)),
                reader.IsDBNull(5) ? null : reader.GetString(5)));
        }

        return users;
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9._-]{2,63}$")]
    private static partial Regex Username();
}

/// <summary>A user as the directory holds it; the hash never leaves the service.</summary>
internal sealed record StoredUser(UserView View, string? PasswordHash);
