using System.Reflection;
using Microsoft.Extensions.Configuration;

namespace Platform.Hosting;

/// <summary>
/// Reads a positional record (a contract such as <c>HostGuardrails</c>) from configuration, each value
/// falling back to <paramref name="defaults"/> on its own: the binder alone needs every constructor
/// parameter set, so a deployment that sets one would otherwise fail at the first request.
/// </summary>
public static class ConfigurationRecords
{
    public static T Read<T>(IConfigurationSection section, T defaults) where T : class
    {
        var constructor = typeof(T).GetConstructors().OrderByDescending(c => c.GetParameters().Length).First();
        var values = constructor.GetParameters().Select(parameter =>
        {
            var fallback = typeof(T).GetProperty(parameter.Name!, BindingFlags.Public | BindingFlags.Instance)!.GetValue(defaults);
            var key = section.GetSection(parameter.Name!);
            return key.Value is null ? fallback : key.Get(parameter.ParameterType) ?? fallback;
        }).ToArray();
        return (T)constructor.Invoke(values);
    }
}
