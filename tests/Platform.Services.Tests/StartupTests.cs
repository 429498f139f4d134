using Npgsql;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>A service that cannot work says why in one line and exits, instead of looping on stack traces.</summary>
public sealed class StartupTests
{
    [Fact]
    public async Task A_wrong_postgres_password_stops_the_service_at_once_with_one_line_naming_postgres()
    {
        await using var environment = await ServiceEnvironment.CreateAsync();
        var wrong = new NpgsqlConnectionStringBuilder(environment.Database.ConnectionString) { Password = "not-the-password" }.ConnectionString;
        await using var service = ServiceProcess.Start("provisioning", environment.For(("ConnectionStrings__Postgres", wrong)));

        var critical = await ExitsWithOneCriticalLineAsync(service, TimeSpan.FromSeconds(30));

        Assert.Contains("PostgreSQL at 127.0.0.1:", critical, StringComparison.Ordinal);
        Assert.Contains("password authentication failed", critical, StringComparison.Ordinal);
        Assert.DoesNotContain("not-the-password", string.Join('\n', service.Output), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unreachable_broker_stops_the_service_after_the_startup_timeout_with_one_line_naming_rabbitmq()
    {
        await using var environment = await ServiceEnvironment.CreateAsync();
        await using var service = ServiceProcess.Start("networking", environment.For(
            ("ConnectionStrings__RabbitMq", "amqp://platform:secret-password@127.0.0.1:9/"),
            ("Platform__StartupTimeoutSeconds", "3")));

        var critical = await ExitsWithOneCriticalLineAsync(service, TimeSpan.FromSeconds(30));

        Assert.Contains("RabbitMQ at amqp://127.0.0.1:9/ unreachable after 3 s", critical, StringComparison.Ordinal);
        Assert.DoesNotContain("secret-password", string.Join('\n', service.Output), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_broker_that_refuses_the_credentials_stops_the_service_at_once()
    {
        await using var environment = await ServiceEnvironment.CreateAsync();
        var wrong = new UriBuilder(environment.VirtualHost.ConnectionString) { Password = "wrong" }.Uri.ToString();
        await using var service = ServiceProcess.Start("tenancy", environment.For(("ConnectionStrings__RabbitMq", wrong)));

        var critical = await ExitsWithOneCriticalLineAsync(service, TimeSpan.FromSeconds(30));

        Assert.Contains("refused the credentials of user 'platform'", critical, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ConnectionStrings__RabbitMq", "http://not-amqp", "ConnectionStrings:RabbitMq: The RabbitMQ connection string must be an AMQP URI")]
    [InlineData("ConnectionStrings__Postgres", "Host=127.0.0.1;Nonsense Key=1", "ConnectionStrings:Postgres is not a valid PostgreSQL connection string")]
    [InlineData("ConnectionStrings__Postgres", "", "ConnectionStrings:Postgres is not set (environment variable ConnectionStrings__Postgres)")]
    [InlineData("Platform__Telemetry__OtlpEndpoint", "ftp://collector", "Platform:Telemetry:OtlpEndpoint must be an http(s) URL")]
    [InlineData("Platform__InternalToken", "short", "Platform:InternalToken must be at least 32 characters")]
    public async Task A_malformed_setting_stops_the_service_with_one_line_naming_the_setting(string key, string value, string expected)
    {
        await using var environment = await ServiceEnvironment.CreateAsync();
        await using var service = ServiceProcess.Start("telemetry", environment.For((key, value)));

        var critical = await ExitsWithOneCriticalLineAsync(service, TimeSpan.FromSeconds(30));

        Assert.Contains(expected, critical, StringComparison.Ordinal);
    }

    private static async Task<string> ExitsWithOneCriticalLineAsync(ServiceProcess service, TimeSpan timeout)
    {
        Assert.Equal(2, await service.WaitForExitAsync(timeout));
        var critical = Assert.Single(service.Output, line => line.Contains("\"LogLevel\":\"Critical\"", StringComparison.Ordinal));
        Assert.Contains($"{service.Service} cannot start: ", critical, StringComparison.Ordinal);
        Assert.DoesNotContain(service.Output, line => line.Contains("   at ", StringComparison.Ordinal));
        return critical;
    }
}
