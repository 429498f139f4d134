using System.CommandLine;
using System.Text.Json;

namespace Platform.Cli;

public sealed partial class Plat
{
    private Command LoginCommand()
    {
        var username = new Option<string?>("--username", "-u") { Description = "Log in as this user (with its password)" };
        var passwordStdin = new Option<bool>("--password-stdin") { Description = "Read the password from standard input" };
        var apiKeyStdin = new Option<bool>("--api-key-stdin") { Description = "Read an API key from standard input instead" };
        var command = new Command("login", "Save the gateway's address and a credential for the commands that follow (in ~/.config/plat, mode 600)")
        {
            username,
            passwordStdin,
            apiKeyStdin,
        };
        command.SetAction((parsed, cancellationToken) => Guarded(async () =>
        {
            var saved = CliSettings.Load(SettingsFolder);
            var url = parsed.GetValue(_url) ?? environment.GetValueOrDefault("PLAT_URL") ?? saved.Url
                ?? await PromptAsync("Gateway address: ", secret: false)
                ?? throw new CliException(ExitCodes.Usage, "plat login needs the gateway's address: --url <address>.");
            CliSettings settings;
            if (parsed.GetValue(apiKeyStdin))
            {
                var key = (await input.ReadLineAsync(cancellationToken))?.Trim();
                if (string.IsNullOrEmpty(key))
                {
                    throw new CliException(ExitCodes.Usage, "no API key on standard input.");
                }

                settings = new CliSettings { Url = url, ApiKey = key };
                // The key is checked before it is kept: a machines list that any role may read.
                using var client = new GatewayClient(url, settings, handler);
                await client.GetAsync("api/v1/machines?limit=1", cancellationToken);
            }
            else
            {
                var name = parsed.GetValue(username) ?? await PromptAsync("Username: ", secret: false)
                    ?? throw new CliException(ExitCodes.Usage, "plat login needs --username, or --api-key-stdin.");
                var password = parsed.GetValue(passwordStdin)
                    ? (await input.ReadLineAsync(cancellationToken))?.TrimEnd('\r', '\n')
                    : await PromptAsync("Password: ", secret: true);
                if (string.IsNullOrEmpty(password))
                {
                    throw new CliException(ExitCodes.Usage, "no password: pass it on standard input with --password-stdin.");
                }

                using var anonymous = new GatewayClient(url, new CliSettings(), handler);
                var token = await anonymous.PostAsync("api/v1/auth/token", new { username = name, password }, cancellationToken);
                settings = new CliSettings
                {
                    Url = url,
                    Username = name,
                    Token = token.GetProperty("accessToken").GetString(),
                    TokenExpiresAt = token.TryGetProperty("expiresAt", out var expires) && expires.ValueKind == JsonValueKind.String ? expires.GetDateTimeOffset() : null,
                };
            }

            settings.Save(SettingsFolder);
            await output.WriteLineAsync(settings.Username is { } who ? $"Logged in to {url} as {who}." : $"Logged in to {url} with an API key.");
            return ExitCodes.Ok;
        }, parsed.GetValue(_url)));
        return command;
    }

    private Command LogoutCommand()
    {
        var command = new Command("logout", "Forget the saved credential (the gateway's address stays)");
        command.SetAction((_, _) => Guarded(async () =>
        {
            var settings = CliSettings.Load(SettingsFolder);
            (settings with { Token = null, TokenExpiresAt = null, ApiKey = null, Username = null }).Save(SettingsFolder);
            await output.WriteLineAsync("Logged out.");
            return ExitCodes.Ok;
        }));
        return command;
    }

    /// <summary>Asks on the terminal; null when plat's input is not one (a script must pass what is asked as options).</summary>
    private async Task<string?> PromptAsync(string question, bool secret)
    {
        if (!ReferenceEquals(input, Console.In) || Console.IsInputRedirected)
        {
            return null;
        }

        await error.WriteAsync(question);
        if (!secret)
        {
            return Console.ReadLine()?.Trim();
        }

        var typed = new System.Text.StringBuilder();
        while (Console.ReadKey(intercept: true) is var key && key.Key != ConsoleKey.Enter)
        {
            if (key.Key == ConsoleKey.Backspace)
            {
                typed.Length = Math.Max(0, typed.Length - 1);
            }
            else if (!char.IsControl(key.KeyChar))
            {
                typed.Append(key.KeyChar);
            }
        }

        await error.WriteLineAsync();
        return typed.ToString();
    }
}
