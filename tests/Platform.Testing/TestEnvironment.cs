namespace Platform.Testing;

/// <summary>Where the test run's own PostgreSQL and RabbitMQ are: set by <c>./platform test</c> (or <c>./platform deps up test</c>).</summary>
public static class TestEnvironment
{
    public static string Postgres => Required("PLATFORM_TEST_POSTGRES");

    public static string RabbitMq => Required("PLATFORM_TEST_RABBITMQ");

    public static string RabbitMqManagement => Required("PLATFORM_TEST_RABBITMQ_MANAGEMENT");

    /// <summary>Where <c>./platform</c> builds micro-VM templates (<c>{dir}/microvm-default/current</c>).</summary>
    public static string MicroVmTemplates => Required("PLATFORM_MICROVM_TEMPLATES");

    private static string Required(string name) =>
        Environment.GetEnvironmentVariable(name) is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException($"{name} is not set: run the tests with './platform test', or 'eval \"$(./platform deps up test)\"' first.");
}
