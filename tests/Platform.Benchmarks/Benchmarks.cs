namespace Platform.Benchmarks;

internal static class Benchmarks
{
    public static IReadOnlyDictionary<string, Func<string[], Task>> All { get; } = new Dictionary<string, Func<string[], Task>>
    {
        ["eventstore"] = EventStoreBenchmark.RunAsync,
        ["audit"] = AuditBenchmark.RunAsync,
        ["sandbox"] = SandboxBenchmark.RunAsync,
        ["machines"] = MachinesBenchmark.RunAsync,
        ["saga"] = SagaBenchmark.RunAsync,
        ["exec"] = ExecBenchmark.RunAsync,
        ["lifecycle"] = LifecycleBenchmark.RunAsync,
    };

    public static string Required(string variable) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException($"{variable} is not set: run benchmarks with './platform bench <name>'.");

    /// <summary>Prints a figure the way every benchmark does, so runs can be compared line by line.</summary>
    public static void Report(string name, double value) =>
        Console.WriteLine(FormattableString.Invariant($"{name}: {value:0.##}"));
}
