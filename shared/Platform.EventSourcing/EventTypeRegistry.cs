using System.Collections.Concurrent;
using System.Reflection;

namespace Platform.EventSourcing;

/// <summary>
/// Maps CLR event types to the stable names stored with each event, so renaming or moving a class
/// never orphans history. A shape change gets a new name (<c>MachineRequestedV2</c>), never an edit.
/// </summary>
public sealed class EventTypeRegistry
{
    private readonly ConcurrentDictionary<string, Type> _typesByName = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Type, string> _namesByType = new();

    public EventTypeRegistry Map<TEvent>(string name) => Map(typeof(TEvent), name);

    public EventTypeRegistry Map(Type type, string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (_typesByName.TryGetValue(name, out var existing) && existing != type)
        {
            throw new InvalidOperationException($"Event name '{name}' is already mapped to {existing.FullName}.");
        }

        _typesByName[name] = type;
        _namesByType[type] = name;
        return this;
    }

    /// <summary>Maps every public non-abstract class or record in <paramref name="assembly"/> whose namespace starts with <paramref name="namespacePrefix"/>, by its simple name.</summary>
    public EventTypeRegistry MapAll(Assembly assembly, string namespacePrefix)
    {
        foreach (var type in assembly.GetExportedTypes())
        {
            if (type is { IsClass: true, IsAbstract: false, IsGenericTypeDefinition: false } &&
                type.Namespace?.StartsWith(namespacePrefix, StringComparison.Ordinal) == true)
            {
                Map(type, type.Name);
            }
        }

        return this;
    }

    public string NameOf(Type type) =>
        _namesByType.TryGetValue(type, out var name)
            ? name
            : throw new InvalidOperationException($"Event type {type.FullName} is not mapped to a stored name; map it in the service's EventTypeRegistry.");

    public Type? TypeOf(string name) => _typesByName.GetValueOrDefault(name);

    /// <summary>Every stored name with its type.</summary>
    public IEnumerable<(string Name, Type Type)> Mappings => _typesByName.Select(pair => (pair.Key, pair.Value));
}
