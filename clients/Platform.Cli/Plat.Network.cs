using System.CommandLine;
using System.Text.Json;

namespace Platform.Cli;

public sealed partial class Plat
{
    private static readonly string[] ForwardColumns = ["FORWARD", "PORT", "STATE", "HOST PORT", "ADDRESS", "ERROR"];
    private static readonly string[] ExitNodeColumns = ["ID", "NAME", "ENDPOINT", "REGION", "SHARED", "EXIT ADDRESS"];

    /// <summary>How often <c>ports open --wait</c> looks at a forward that is still opening.</summary>
    private static readonly TimeSpan ForwardPollInterval = TimeSpan.FromMilliseconds(250);

    private Command PortsCommand()
    {
        var command = new Command("ports", "A machine's TCP ports forwarded to a port of its host")
        {
            ListPortsCommand(),
            OpenPortCommand(),
            ClosePortCommand(),
        };
        return command;
    }

    private Command ListPortsCommand()
    {
        var machine = MachineArgument();
        var command = new Command("list", "A machine's port forwards") { machine };
        command.Aliases.Add("ls");
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var id = await ResolveAsync(client, parsed.GetValue(machine)!, cancellationToken);
            await PrintForwardsAsync(parsed, await PagesAsync(client, $"api/v1/machines/{id}/ports", cancellationToken), single: false);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private Command OpenPortCommand()
    {
        var machine = MachineArgument();
        var port = new Argument<int>("port") { Description = "The machine's TCP port (1–65535)" };
        var wait = new Option<bool>("--wait", "-w") { Description = "Wait until its host has opened it (or failed to)" };
        var timeout = TimeoutOption("How long --wait waits");
        var command = new Command("open", "Forward a machine's port to a port of its host") { machine, port, wait, timeout };
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var id = await ResolveAsync(client, parsed.GetValue(machine)!, cancellationToken);
            var forward = await client.PostAsync($"api/v1/machines/{id}/ports", new { port = parsed.GetValue(port) }, cancellationToken);
            var deadline = DateTimeOffset.UtcNow + parsed.GetValue(timeout);
            while (parsed.GetValue(wait) && Text(forward, "state") == "opening")
            {
                if (DateTimeOffset.UtcNow > deadline)
                {
                    throw new CliException(ExitCodes.TimedOut, $"forward {Text(forward, "id")} is still opening after {parsed.GetValue(timeout).TotalSeconds:0} s.");
                }

                await Task.Delay(ForwardPollInterval, cancellationToken);
                forward = await client.GetAsync($"api/v1/machines/{id}/ports/{Text(forward, "id")}", cancellationToken);
            }

            await PrintForwardsAsync(parsed, [forward], single: true);
            return Text(forward, "state") == "failed" ? ExitCodes.Failed : ExitCodes.Ok;
        }));
        return command;
    }

    private Command ClosePortCommand()
    {
        var machine = MachineArgument();
        var forward = new Argument<Guid>("forward") { Description = "The forward's id (plat ports list)" };
        var command = new Command("close", "Remove a port forward") { machine, forward };
        command.Aliases.Add("rm");
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var id = await ResolveAsync(client, parsed.GetValue(machine)!, cancellationToken);
            await client.DeleteAsync($"api/v1/machines/{id}/ports/{parsed.GetValue(forward)}", cancellationToken);
            await output.WriteLineAsync($"{parsed.GetValue(forward)} is closing");
            return ExitCodes.Ok;
        }));
        return command;
    }

    private Command ExitNodesCommand()
    {
        var command = new Command("exit-nodes", "WireGuard peers that machines' traffic can leave through")
        {
            ListExitNodesCommand(),
            CreateExitNodeCommand(),
            RemoveExitNodeCommand(),
        };
        return command;
    }

    private Command ListExitNodesCommand()
    {
        var command = new Command("list", "The tenant's exit nodes and the shared ones");
        command.Aliases.Add("ls");
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            await PrintExitNodesAsync(parsed, await PagesAsync(client, "api/v1/exit-nodes", cancellationToken), single: false);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private Command CreateExitNodeCommand()
    {
        var name = new Option<string>("--name", "-n") { Description = "Its name", Required = true };
        var endpoint = new Option<string>("--endpoint") { Description = "host:port of its WireGuard listener", Required = true };
        var publicKey = new Option<string>("--public-key") { Description = "Its WireGuard public key (base64)", Required = true };
        var allowedIps = new Option<string[]>("--allowed-ip") { Description = "A CIDR its tunnel carries, repeatable", Required = true };
        var region = new Option<string>("--region") { Description = "Where it is", Required = true };
        var locale = new Option<string?>("--locale") { Description = "A locale hint for machines behind it (de-DE)" };
        var timezone = new Option<string?>("--timezone") { Description = "A time zone hint (Europe/Berlin)" };
        var dns = new Option<string[]>("--dns") { Description = "A DNS server for machines behind it, repeatable" };
        var command = new Command("create", "Register an exit node") { name, endpoint, publicKey, allowedIps, region, locale, timezone, dns };
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var request = new Dictionary<string, object?>
            {
                ["name"] = parsed.GetValue(name),
                ["endpoint"] = parsed.GetValue(endpoint),
                ["publicKey"] = parsed.GetValue(publicKey),
                ["allowedIps"] = parsed.GetValue(allowedIps),
                ["region"] = parsed.GetValue(region),
            };
            AddIfSet(request, "locale", parsed.GetValue(locale));
            AddIfSet(request, "timezone", parsed.GetValue(timezone));
            if (parsed.GetValue(dns) is { Length: > 0 } servers)
            {
                request["dns"] = servers;
            }

            await PrintExitNodesAsync(parsed, [await client.PostAsync("api/v1/exit-nodes", request, cancellationToken)], single: true);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private Command RemoveExitNodeCommand()
    {
        var node = new Argument<Guid>("exit-node") { Description = "The exit node's id" };
        var command = new Command("rm", "Remove an exit node") { node };
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            await client.DeleteAsync($"api/v1/exit-nodes/{parsed.GetValue(node)}", cancellationToken);
            await output.WriteLineAsync($"{parsed.GetValue(node)} removed");
            return ExitCodes.Ok;
        }));
        return command;
    }

    /// <summary>Every item of a paged list (<c>items</c>, <c>nextCursor</c>), or of a plain array.</summary>
    private static async Task<IReadOnlyList<JsonElement>> PagesAsync(GatewayClient client, string path, CancellationToken cancellationToken)
    {
        var items = new List<JsonElement>();
        string? cursor = null;
        do
        {
            var page = await client.GetAsync(cursor is null ? path : $"{path}{(path.Contains('?', StringComparison.Ordinal) ? '&' : '?')}cursor={Uri.EscapeDataString(cursor)}", cancellationToken);
            if (page.ValueKind == JsonValueKind.Array)
            {
                return [.. page.EnumerateArray()];
            }

            items.AddRange(page.GetProperty("items").EnumerateArray());
            cursor = page.TryGetProperty("nextCursor", out var next) && next.ValueKind == JsonValueKind.String ? next.GetString() : null;
        }
        while (cursor is not null);

        return items;
    }

    private async Task PrintForwardsAsync(ParseResult parsed, IReadOnlyList<JsonElement> forwards, bool single)
    {
        if (Json(parsed))
        {
            await output.WriteLineAsync(single ? JsonSerializer.Serialize(forwards[0], Indented) : JsonSerializer.Serialize(forwards, Indented));
            return;
        }

        await PrintTableAsync(ForwardColumns, forwards.Select(f => (IReadOnlyList<string>)
            [Text(f, "id"), Text(f, "port"), Text(f, "state"), Text(f, "hostPort"), Text(f, "address"), Text(f, "lastError")]));
    }

    private async Task PrintExitNodesAsync(ParseResult parsed, IReadOnlyList<JsonElement> nodes, bool single)
    {
        if (Json(parsed))
        {
            await output.WriteLineAsync(single ? JsonSerializer.Serialize(nodes[0], Indented) : JsonSerializer.Serialize(nodes, Indented));
            return;
        }

        await PrintTableAsync(ExitNodeColumns, nodes.Select(n => (IReadOnlyList<string>)
            [Text(n, "id"), Text(n, "name"), Text(n, "endpoint"), Text(n, "region"), Text(n, "shared") == "True" ? "yes" : "", Text(n, "exitAddress")]));
    }
}
