using System.Text.Json;
using System.Text.Json.Serialization;

namespace Platform.Contracts;

/// <summary>
/// The one JSON configuration of the platform: HTTP bodies, stored events and bus messages all use it,
/// so a contract serialises the same way wherever it travels.
/// </summary>
public static class PlatformJson
{
    public static JsonSerializerOptions Options { get; } = Create();

    /// <summary>Applies the platform's settings to options owned by a framework (ASP.NET Core, MassTransit).</summary>
    public static void Apply(JsonSerializerOptions options)
    {
        options.PropertyNamingPolicy = JsonNamingPolicy.CamelCase;
        options.DictionaryKeyPolicy = JsonNamingPolicy.CamelCase;
        options.PropertyNameCaseInsensitive = true;
        options.DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull;
        options.NumberHandling = JsonNumberHandling.Strict;
        if (!options.Converters.OfType<JsonStringEnumConverter>().Any())
        {
            options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower, allowIntegerValues: false));
        }
    }

    private static JsonSerializerOptions Create()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        Apply(options);
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }
}
