using System.Reflection;

namespace Platform.Contracts;

/// <summary>Identifies the contracts assembly: the types in it are the platform's integration messages.</summary>
public static class ContractsAssembly
{
    public static Assembly Assembly { get; } = typeof(ContractsAssembly).Assembly;

    public static bool Contains(Type type) => type.Assembly == Assembly && type.Namespace?.StartsWith("Platform.Contracts.", StringComparison.Ordinal) == true;
}
