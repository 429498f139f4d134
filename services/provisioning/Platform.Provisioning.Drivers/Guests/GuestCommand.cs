using System.Text.RegularExpressions;

namespace Platform.Provisioning.Drivers.Guests;

/// <summary>
/// A command to run inside a machine: its arguments (the program first), the variables it adds to the machine's
/// environment, its working directory and its user (the machine's root when null). Checked once here, before any driver
/// sees it: <see cref="Problem"/> says what is wrong with it in words a caller can act on.
/// </summary>
public sealed partial record GuestCommand(IReadOnlyList<string> Argv)
{
    public const int MaxArguments = 4096;
    public const int MaxBytes = 256 * 1024;

    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>An absolute path inside the machine; its driver's default (the sandbox's <c>/scratch</c>, the image's) when null.</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary><c>uid</c> or <c>uid:gid</c>, or a name the machine knows (containers); root when null.</summary>
    public string? User { get; init; }

    /// <summary>
    /// When set, the command runs on a terminal of this size, its controlling terminal: what it writes, to either stream,
    /// comes back as its output, as a terminal shows it, and its input is typed into the terminal.
    /// </summary>
    public TerminalSize? Terminal { get; init; }

    /// <summary>Why it cannot run, or null when it can.</summary>
    public string? Problem()
    {
        if (Argv.Count == 0 || string.IsNullOrEmpty(Argv[0]))
        {
            return "command must name a program: a non-empty array whose first element is not empty.";
        }

        if (Argv.Count > MaxArguments)
        {
            return $"command has {Argv.Count} arguments; at most {MaxArguments}.";
        }

        if (Argv.Any(a => a is null || a.Contains('\0')))
        {
            return "command's arguments may not be null or hold a NUL character.";
        }

        foreach (var (name, value) in Environment)
        {
            if (!EnvironmentName().IsMatch(name))
            {
                return $"env name '{Shorten(name)}' is not a variable name (letters, digits and '_', not starting with a digit).";
            }

            if (value is null || value.Contains('\0'))
            {
                return $"env {name} may not be null or hold a NUL character.";
            }
        }

        var bytes = Argv.Sum(a => System.Text.Encoding.UTF8.GetByteCount(a) + 1)
            + Environment.Sum(e => System.Text.Encoding.UTF8.GetByteCount(e.Key) + System.Text.Encoding.UTF8.GetByteCount(e.Value) + 2);
        if (bytes > MaxBytes)
        {
            return $"command and env take {bytes} bytes; at most {MaxBytes}.";
        }

        if (WorkingDirectory is { } directory && (!directory.StartsWith('/') || directory.Contains('\0') || directory.Length > 4096))
        {
            return "cwd must be an absolute path inside the machine.";
        }

        if (User is { } user && !UserName().IsMatch(user))
        {
            return $"user '{Shorten(user)}' is neither a user name nor uid[:gid].";
        }

        if (Terminal is { } terminal && terminal.Problem() is { } problem)
        {
            return $"tty {problem}";
        }

        return null;
    }

    /// <summary>The numeric uid and gid of <see cref="User"/>, when it is numeric (<c>root</c> is 0:0); null for other names.</summary>
    public (int Uid, int Gid)? NumericUser() => User switch
    {
        null or "root" => (0, 0),
        _ when NumericUserPattern().Match(User) is { Success: true } match =>
            (int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture),
             match.Groups[2].Success ? int.Parse(match.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture) : int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)),
        _ => null,
    };

    private static string Shorten(string value) => value.Length > 40 ? value[..40] + "…" : value;

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]{0,255}$")]
    private static partial Regex EnvironmentName();

    [GeneratedRegex("^([a-z_][a-z0-9_.-]{0,31}|[0-9]{1,9}(:[0-9]{1,9})?)$")]
    private static partial Regex UserName();

    [GeneratedRegex("^([0-9]{1,9})(?::([0-9]{1,9}))?$")]
    private static partial Regex NumericUserPattern();
}

/// <summary>A terminal's size in characters.</summary>
public sealed record TerminalSize(int Columns, int Rows)
{
    public const int Max = 1000;

    /// <summary>Why it is no size, or null when it is one.</summary>
    public string? Problem() => Columns is < 1 or > Max || Rows is < 1 or > Max
        ? $"must be 1 to {Max} columns by 1 to {Max} rows, not {Columns} by {Rows}."
        : null;

    public static TerminalSize Default { get; } = new(80, 24);
}
