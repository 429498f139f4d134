using System.Text.Json;
using System.Text.Json.Serialization;

namespace Platform.Cli;

/// <summary>
/// Where plat finds the gateway and its credential: <c>config.json</c> in <c>$PLAT_CONFIG_DIR</c>, else
/// <c>$XDG_CONFIG_HOME/plat</c>, else <c>~/.config/plat</c>. The folder is the user's alone (700) and the file too (600):
/// it holds a token or an API key.
/// </summary>
public sealed record CliSettings
{
    private const UnixFileMode UserOnlyFolder = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode UserOnlyFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    /// <summary>The gateway's address, for example <c>http://127.0.0.1:8080</c>.</summary>
    public string? Url { get; init; }

    /// <summary>A bearer token from <c>POST /api/v1/auth/token</c>, and when it expires.</summary>
    public string? Token { get; init; }

    public DateTimeOffset? TokenExpiresAt { get; init; }

    /// <summary>An API key (sent as <c>Authorization: ApiKey …</c>).</summary>
    public string? ApiKey { get; init; }

    /// <summary>Who logged in, for <c>plat login</c>'s answer.</summary>
    public string? Username { get; init; }

    public static string Folder(IReadOnlyDictionary<string, string?> environment) =>
        environment.GetValueOrDefault("PLAT_CONFIG_DIR") is { Length: > 0 } folder ? folder
        : environment.GetValueOrDefault("XDG_CONFIG_HOME") is { Length: > 0 } xdg ? Path.Combine(xdg, "plat")
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config", "plat");

    public static CliSettings Load(string folder)
    {
        var file = Path.Combine(folder, "config.json");
        return File.Exists(file) ? JsonSerializer.Deserialize<CliSettings>(File.ReadAllText(file), Json) ?? new CliSettings() : new CliSettings();
    }

    /// <summary>Writes the file whole (a reader sees the old one or the new one), readable by the user alone where the system has Unix modes.</summary>
    public void Save(string folder)
    {
        var file = Path.Combine(folder, "config.json");
        var staging = file + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(folder);
        }
        else
        {
            Directory.CreateDirectory(folder, UserOnlyFolder);
            File.SetUnixFileMode(folder, UserOnlyFolder);
            options.UnixCreateMode = UserOnlyFile;
        }

        using (var stream = new FileStream(staging, options))
        {
            JsonSerializer.Serialize(stream, this, Json);
        }

        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(staging, UserOnlyFile);
        }

        File.Move(staging, file, overwrite: true);
    }
}
