using System.CommandLine;
using System.Net;
using System.Text.Json;

namespace Platform.Cli;

/// <summary>
/// plat's commands (docs/cli.md). Everything it prints goes to <c>output</c> and <c>error</c>, everything it reads comes
/// from <c>input</c>, and its configuration folder from <c>environment</c>: a test runs it as a user would, in-process.
/// </summary>
public sealed partial class Plat(TextWriter output, TextWriter error, TextReader input, IReadOnlyDictionary<string, string?> environment, HttpMessageHandler? handler = null)
{
    private static readonly JsonSerializerOptions Indented = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    private readonly Option<string> _output = new("--output", "-o")
    {
        Description = "How answers are printed: table (the default) or json",
        Recursive = true,
        DefaultValueFactory = _ => "table",
    };

    private readonly Option<string?> _url = new("--url")
    {
        Description = "The gateway's address, instead of the one plat login saved",
        Recursive = true,
    };

    public static async Task<int> Main(string[] args)
    {
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        var environment = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>().ToDictionary(e => (string)e.Key, e => (string?)e.Value);
        return await new Plat(Console.Out, Console.Error, Console.In, environment).RunAsync(args, stop.Token);
    }

    public async Task<int> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        _output.AcceptOnlyFromAmong("table", "json");
        var root = new RootCommand("plat: create, enter and watch Platform machines through its gateway.")
        {
            _output,
            _url,
            LoginCommand(),
            LogoutCommand(),
            MachinesCommand(),
            SnapshotsCommand(),
            ExecCommand(),
            ProcessesCommand(),
            CopyCommand(),
            LogsCommand(),
            PortsCommand(),
            ExitNodesCommand(),
            EventsCommand(),
            AuditCommand(),
            CompletionCommand(),
        };
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var problem in parsed.Errors)
            {
                await error.WriteLineAsync($"plat: {problem.Message}");
            }

            await error.WriteLineAsync("Run 'plat --help' for usage.");
            return ExitCodes.Usage;
        }

        return await parsed.InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, cancellationToken);
    }

    private string SettingsFolder => CliSettings.Folder(environment);

    /// <summary>Runs a command's work with a client of the configured gateway, and turns what goes wrong into a message and an exit code.</summary>
    private Func<ParseResult, CancellationToken, Task<int>> WithGateway(Func<ParseResult, GatewayClient, CancellationToken, Task<int>> work) =>
        (parsed, cancellationToken) => Guarded(async () =>
        {
            var settings = CliSettings.Load(SettingsFolder);
            var url = parsed.GetValue(_url) ?? environment.GetValueOrDefault("PLAT_URL") ?? settings.Url
                ?? throw new CliException(ExitCodes.Unauthorized, "the gateway is not known: run plat login --url <address> first.");
            if (settings.Token is null && settings.ApiKey is null)
            {
                throw new CliException(ExitCodes.Unauthorized, "not logged in: run plat login first.");
            }

            if (settings.ApiKey is null && settings.TokenExpiresAt < DateTimeOffset.UtcNow)
            {
                throw new CliException(ExitCodes.Unauthorized, "the login has expired: run plat login again.");
            }

            using var client = new GatewayClient(url, settings, handler);
            return await work(parsed, client, cancellationToken);
        }, url: parsed.GetValue(_url));

    private async Task<int> Guarded(Func<Task<int>> work, string? url = null)
    {
        try
        {
            return await work();
        }
        catch (ProblemException problem)
        {
            await error.WriteLineAsync($"plat: {problem.Title}" + (problem.Detail is { Length: > 0 } detail ? $": {detail}" : ""));
            if (problem.Errors is { ValueKind: JsonValueKind.Object } fields)
            {
                foreach (var field in fields.EnumerateObject())
                {
                    await error.WriteLineAsync($"  {field.Name}: {string.Join("; ", field.Value.EnumerateArray().Select(m => m.GetString()))}");
                }
            }

            if (problem.TraceId is { } trace)
            {
                await error.WriteLineAsync($"  trace: {trace}");
            }

            return ExitCodes.Of(problem.Status);
        }
        catch (CliException refused)
        {
            await error.WriteLineAsync($"plat: {refused.Message}");
            return refused.ExitCode;
        }
        catch (HttpRequestException unreachable) when (unreachable.StatusCode is null)
        {
            await error.WriteLineAsync($"plat: the gateway{(url is null ? "" : $" at {url}")} does not answer: {unreachable.Message}");
            return ExitCodes.Unreachable;
        }
        catch (OperationCanceledException)
        {
            await error.WriteLineAsync("plat: interrupted");
            return ExitCodes.Interrupted;
        }
    }

    private bool Json(ParseResult parsed) => parsed.GetValue(_output) == "json";

    private Task PrintJsonAsync(JsonElement element) => output.WriteLineAsync(JsonSerializer.Serialize(element, Indented));

    /// <summary>Rows under a header, each column as wide as its widest cell.</summary>
    private async Task PrintTableAsync(IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows)
    {
        var all = rows.Prepend(header).ToList();
        var widths = header.Select((_, column) => all.Max(row => row[column].Length)).ToList();
        foreach (var row in all)
        {
            await output.WriteLineAsync(string.Join("  ", row.Select((cell, column) => column == row.Count - 1 ? cell : cell.PadRight(widths[column]))).TrimEnd());
        }
    }

    private static string Text(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) ? value.ValueKind switch
        {
            JsonValueKind.String => value.GetString()!,
            JsonValueKind.Null or JsonValueKind.Undefined => "",
            _ => value.ToString(),
        } : "";

    /// <summary>What plat exits with: scripts may rely on these (docs/cli.md).</summary>
    public static class ExitCodes
    {
        public const int Ok = 0;
        public const int Failed = 1;
        public const int Usage = 2;
        public const int Unauthorized = 3;
        public const int NotFound = 4;
        public const int Conflict = 5;
        public const int Invalid = 6;
        public const int TimedOut = 7;
        public const int Unreachable = 8;
        public const int Interrupted = 130;

        public static int Of(HttpStatusCode status) => status switch
        {
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden => Unauthorized,
            HttpStatusCode.NotFound => NotFound,
            HttpStatusCode.Conflict or HttpStatusCode.PreconditionFailed => Conflict,
            HttpStatusCode.BadRequest or HttpStatusCode.UnprocessableEntity or HttpStatusCode.RequestEntityTooLarge or HttpStatusCode.LengthRequired => Invalid,
            HttpStatusCode.RequestTimeout or HttpStatusCode.GatewayTimeout => TimedOut,
            _ => Failed,
        };
    }
}

/// <summary>plat refuses, with a message for the user and an exit code for a script.</summary>
public sealed class CliException(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
