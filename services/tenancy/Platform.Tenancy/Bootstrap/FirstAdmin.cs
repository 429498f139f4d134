using System.Security.Cryptography;
using System.Text.Json;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Tenancy;
using Platform.Hosting.Security;
using Platform.Tenancy.Users;

namespace Platform.Tenancy.Bootstrap;

/// <summary>
/// Creates the first platform-admin once, when none exists and a credentials file is configured
/// (<c>Platform:Tenancy:AdminCredentialsFile</c>): user <c>admin</c> with a generated password, written to
/// that file (mode 600) and nowhere else. The file is written before the user, so a crash loses neither.
/// </summary>
public sealed class FirstAdmin(IConfiguration configuration, NpgsqlDataSource dataSource, TenancyEvents events, Passwords passwords, TimeProvider time, ILogger<FirstAdmin> logger)
    : IHostedService
{
    public const string CredentialsFileKey = "Platform:Tenancy:AdminCredentialsFile";
    public const string Username = "admin";

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (configuration[CredentialsFileKey] is not { Length: > 0 } path)
        {
            return;
        }

        await using (var command = dataSource.CreateCommand($"SELECT count(*) FROM {TenancyService.Schema}.users WHERE role = '{Roles.PlatformAdmin}'"))
        {
            if ((long)(await command.ExecuteScalarAsync(cancellationToken))! > 0)
            {
                return;
            }
        }

        var password = Convert.ToBase64String(RandomNumberGenerator.GetBytes(24)).Replace('+', '-').Replace('/', '_');
        var pending = path + ".new";
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        File.Delete(pending);
        await using (var file = new FileStream(pending, options))
        {
            await JsonSerializer.SerializeAsync(file, new { username = Username, password }, PlatformJson.Options, cancellationToken);
        }

        var now = time.GetUtcNow();
        var created = new UserCreated(Guid.CreateVersion7(now), null, Username, Roles.PlatformAdmin, now);
        try
        {
            await events.AppendAsync($"user-{created.UserId}", [created, new UserPasswordHashSet(created.UserId, passwords.Hash(password), now)], null, null, "the first admin exists", cancellationToken);
        }
        catch (Platform.Hosting.Problems.ProblemException)
        {
            // Another instance created it first; its file is the one that counts.
            File.Delete(pending);
            return;
        }

        File.Move(pending, path, overwrite: true);
        logger.LogWarning("Created the first platform-admin '{Username}'; its credentials are in {Path}", Username, path);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
