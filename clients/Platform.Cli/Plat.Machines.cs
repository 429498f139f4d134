using System.CommandLine;
using System.Globalization;
using System.Text.Json;

namespace Platform.Cli;

public sealed partial class Plat
{
    /// <summary>How long one wait request may last: the API's own limit.</summary>
    private static readonly TimeSpan WaitRequestLimit = TimeSpan.FromSeconds(60);

    private static readonly string[] MachineColumns = ["ID", "NAME", "KIND", "STATE", "VCPUS", "MEMORY", "IP"];

    private Command MachinesCommand()
    {
        var command = new Command("machines", "Create, list, start, stop, pause and remove machines")
        {
            CreateMachineCommand(),
            ListMachinesCommand(),
            GetMachineCommand(),
            WaitMachineCommand(),
            ActionCommand("start", "Start a stopped machine", "start", "running"),
            ActionCommand("stop", "Stop a running machine", "stop", "stopped"),
            ActionCommand("pause", "Pause a running machine in place", "pause", "paused"),
            ActionCommand("resume", "Let a paused machine run on as it was", "resume", "running"),
            KeepAliveCommand(),
            ForkMachineCommand(),
            ActionCommand("restart", "Stop and start a machine", "restart", "running"),
            RemoveMachineCommand(),
        };
        command.Aliases.Add("machine");
        return command;
    }

    private Command CreateMachineCommand()
    {
        var kind = new Option<string?>("--kind", "-k") { Description = "microvm, sandbox, container or cloud (required unless --from-snapshot)" };
        var fromSnapshot = new Option<Guid?>("--from-snapshot") { Description = "Make it from a snapshot, as its machine was made (its kind, template and shape unless given)" };
        var name = new Option<string?>("--name", "-n") { Description = "A DNS label, unique among the tenant's machines" };
        var template = new Option<string?>("--template", "-t") { Description = "name or name@version (a container names its image)" };
        var vcpus = new Option<int?>("--vcpus") { Description = "Virtual CPUs (1; a snapshot's own with --from-snapshot)" };
        var memory = new Option<int?>("--memory-mib", "--memory") { Description = "Memory in MiB (256; a snapshot's own with --from-snapshot)" };
        var labels = new Option<string[]>("--label", "-l") { Description = "key=value, repeatable", AllowMultipleArgumentsPerToken = false };
        var exitNode = new Option<Guid?>("--exit-node") { Description = "An exit node for the machine's egress" };
        var driver = new Option<string?>("--driver") { Description = "A driver other than the kind's own (aws, gcp, azure for cloud)" };
        var wait = new Option<bool>("--wait", "-w") { Description = "Wait until it runs (or fails)" };
        var ttl = new Option<TimeSpan?>("--ttl") { Description = "Destroy it this long after its creation or last keepalive (90s, 30m, 24h)", CustomParser = r => ParseDuration(r) };
        var idle = new Option<string?>("--idle") { Description = "DURATION:ACTION, what happens once it did no work that long (15m:pause; stop, pause or destroy)" };
        var timeout = TimeoutOption("How long --wait waits");
        var argv = new Argument<string[]>("command") { Description = "A sandbox's or container's command, after --", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("create", "Create a machine; with --wait, answer once it runs") { kind, fromSnapshot, name, template, vcpus, memory, labels, exitNode, driver, ttl, idle, wait, timeout, argv };
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var snapshot = parsed.GetValue(fromSnapshot);
            if (parsed.GetValue(kind) is null && snapshot is null)
            {
                throw new CliException(ExitCodes.Usage, "--kind is required (or --from-snapshot).");
            }

            var request = new Dictionary<string, object?>();
            AddIfSet(request, "kind", parsed.GetValue(kind));
            AddIfSet(request, "fromSnapshot", snapshot);
            AddIfSet(request, "vcpus", parsed.GetValue(vcpus) ?? (snapshot is null ? 1 : null));
            AddIfSet(request, "memoryMiB", parsed.GetValue(memory) ?? (snapshot is null ? 256 : null));
            AddIfSet(request, "name", parsed.GetValue(name));
            AddIfSet(request, "template", parsed.GetValue(template));
            AddIfSet(request, "driver", parsed.GetValue(driver));
            AddIfSet(request, "exitNodeId", parsed.GetValue(exitNode));
            if (parsed.GetValue(ttl) is { } timeToLive)
            {
                request["ttlSeconds"] = (int)Math.Ceiling(timeToLive.TotalSeconds);
            }

            if (parsed.GetValue(idle) is { } idlePolicy)
            {
                request["idle"] = IdlePolicy(idlePolicy);
            }

            if (parsed.GetValue(labels) is { Length: > 0 } pairs)
            {
                request["labels"] = pairs.Select(Pair).ToDictionary(p => p.Key, p => p.Value);
            }

            if (parsed.GetValue(argv) is { Length: > 0 } commandLine)
            {
                request["command"] = commandLine;
            }

            var accepted = await client.PostAsync("api/v1/machines", request, cancellationToken);
            var id = accepted.GetProperty("id").GetGuid();
            var machine = parsed.GetValue(wait)
                ? await WaitForAsync(client, id, "running", parsed.GetValue(timeout), cancellationToken)
                : await client.GetAsync($"api/v1/machines/{id}", cancellationToken);
            await PrintMachinesAsync(parsed, [machine], single: true);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private Command ListMachinesCommand()
    {
        var state = new Option<string?>("--state") { Description = "Only machines in this state (destroyed ones only this way)" };
        var labels = new Option<string[]>("--label", "-l") { Description = "Only machines with this key=value label, repeatable" };
        var command = new Command("list", "The tenant's machines") { state, labels };
        command.Aliases.Add("ls");
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var query = new List<string> { "limit=100" };
            if (parsed.GetValue(state) is { } wanted)
            {
                query.Add("state=" + Uri.EscapeDataString(wanted));
            }

            query.AddRange((parsed.GetValue(labels) ?? []).Select(l => "label=" + Uri.EscapeDataString(l)));
            var machines = await PagesAsync(client, $"api/v1/machines?{string.Join('&', query)}", cancellationToken);
            await PrintMachinesAsync(parsed, machines, single: false);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private Command GetMachineCommand()
    {
        var machine = MachineArgument();
        var command = new Command("get", "One machine") { machine };
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var id = await ResolveAsync(client, parsed.GetValue(machine)!, cancellationToken);
            await PrintMachinesAsync(parsed, [await client.GetAsync($"api/v1/machines/{id}", cancellationToken)], single: true);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private Command WaitMachineCommand()
    {
        var machine = MachineArgument();
        var state = new Option<string>("--state", "-s") { Description = "The state to wait for", DefaultValueFactory = _ => "running" };
        var timeout = TimeoutOption("How long to wait");
        var command = new Command("wait", "Wait until a machine is in a state; exits 7 when the time is up first") { machine, state, timeout };
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var id = await ResolveAsync(client, parsed.GetValue(machine)!, cancellationToken);
            await PrintMachinesAsync(parsed, [await WaitForAsync(client, id, parsed.GetValue(state)!, parsed.GetValue(timeout), cancellationToken)], single: true);
            return ExitCodes.Ok;
        }));
        return command;
    }

    /// <summary>start, stop, restart: the action, then, with --wait, the state it leads to.</summary>
    private Command ActionCommand(string name, string description, string action, string leadsTo)
    {
        var machine = MachineArgument();
        var wait = new Option<bool>("--wait", "-w") { Description = $"Wait until it is {leadsTo}" };
        var timeout = TimeoutOption("How long --wait waits");
        var command = new Command(name, description) { machine, wait, timeout };
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var id = await ResolveAsync(client, parsed.GetValue(machine)!, cancellationToken);
            await client.PostAsync($"api/v1/machines/{id}/{action}", null, cancellationToken);
            var state = parsed.GetValue(wait)
                ? await WaitForAsync(client, id, leadsTo, parsed.GetValue(timeout), cancellationToken)
                : await client.GetAsync($"api/v1/machines/{id}", cancellationToken);
            await PrintMachinesAsync(parsed, [state], single: true);
            return ExitCodes.Ok;
        }));
        return command;
    }

    /// <summary>keepalive: its time-to-live starts again, and its idleness.</summary>
    private Command KeepAliveCommand()
    {
        var machine = MachineArgument();
        var command = new Command("keepalive", "Start a machine's time-to-live (and its idle time) again") { machine };
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var id = await ResolveAsync(client, parsed.GetValue(machine)!, cancellationToken);
            var kept = await client.PostAsync($"api/v1/machines/{id}/keepalive", null, cancellationToken);
            await PrintMachinesAsync(parsed, [kept], single: true);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private Command RemoveMachineCommand()
    {
        var machine = MachineArgument();
        var wait = new Option<bool>("--wait", "-w") { Description = "Wait until it is destroyed" };
        var timeout = TimeoutOption("How long --wait waits");
        var command = new Command("rm", "Destroy a machine") { machine, wait, timeout };
        command.Aliases.Add("destroy");
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var id = await ResolveAsync(client, parsed.GetValue(machine)!, cancellationToken);
            await client.DeleteAsync($"api/v1/machines/{id}", cancellationToken);
            if (parsed.GetValue(wait))
            {
                await WaitForAsync(client, id, "destroyed", parsed.GetValue(timeout), cancellationToken);
            }

            if (!Json(parsed))
            {
                await output.WriteLineAsync(parsed.GetValue(wait) ? $"{id} destroyed" : $"{id} is being destroyed");
            }
            else
            {
                await PrintJsonAsync(await client.GetAsync($"api/v1/machines/{id}", cancellationToken));
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Argument<string> MachineArgument() => new("machine") { Description = "The machine's id or name" };

    private static Option<TimeSpan> TimeoutOption(string description) =>
        new("--timeout") { Description = description + " (for example 90s, 5m)", DefaultValueFactory = _ => TimeSpan.FromMinutes(5), CustomParser = ParseDuration };

    /// <summary>The machine an id or a (live machine's) name names.</summary>
    private static async Task<Guid> ResolveAsync(GatewayClient client, string machine, CancellationToken cancellationToken)
    {
        if (Guid.TryParse(machine, out var id))
        {
            return id;
        }

        if ((await PagesAsync(client, "api/v1/machines?limit=100", cancellationToken)).FirstOrDefault(m => Text(m, "name") == machine) is { ValueKind: JsonValueKind.Object } named)
        {
            return named.GetProperty("id").GetGuid();
        }

        throw new CliException(ExitCodes.NotFound, $"no machine is named '{machine}'.");
    }

    /// <summary>Waits, a minute per request at most, until the machine is in <paramref name="state"/>; a failed machine or the time running out is an error.</summary>
    private async Task<JsonElement> WaitForAsync(GatewayClient client, Guid id, string state, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        // On a terminal, a word of what plat waits for and how long it has waited (not in a script's output).
        using var progress = ReferenceEquals(error, Console.Error) && !Console.IsErrorRedirected ? new Timer(
            _ => Console.Error.Write($"\rplat: waiting for {id} to be {state}… {(DateTimeOffset.UtcNow - (deadline - timeout)).TotalSeconds:0} s "),
            null, TimeSpan.Zero, TimeSpan.FromSeconds(1)) : null;
        try
        {
            return await WaitUntilAsync(client, id, state, timeout, deadline, cancellationToken);
        }
        finally
        {
            if (progress is not null)
            {
                await progress.DisposeAsync();
                Console.Error.Write("\r\u001b[K");
            }
        }
    }

    private static async Task<JsonElement> WaitUntilAsync(GatewayClient client, Guid id, string state, TimeSpan timeout, DateTimeOffset deadline, CancellationToken cancellationToken)
    {
        while (true)
        {
            var left = deadline - DateTimeOffset.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                var now = await client.GetAsync($"api/v1/machines/{id}", cancellationToken);
                throw new CliException(ExitCodes.TimedOut, $"machine {id} is {Text(now, "state")}, not {state}, after {timeout.TotalSeconds:0} s.");
            }

            var seconds = (int)Math.Ceiling(Math.Min(left.TotalSeconds, WaitRequestLimit.TotalSeconds));
            try
            {
                return await client.GetAsync($"api/v1/machines/{id}/wait?state={Uri.EscapeDataString(state)}&timeout={seconds}s", cancellationToken);
            }
            catch (ProblemException notYet) when (notYet.Status == System.Net.HttpStatusCode.RequestTimeout)
            {
                // A minute passed: ask again until the deadline.
            }
        }
    }

    private async Task PrintMachinesAsync(ParseResult parsed, IReadOnlyList<JsonElement> machines, bool single)
    {
        if (Json(parsed))
        {
            await output.WriteLineAsync(single
                ? JsonSerializer.Serialize(machines[0], Indented)
                : JsonSerializer.Serialize(machines, Indented));
            return;
        }

        await PrintTableAsync(MachineColumns, machines.Select(m => (IReadOnlyList<string>)
        [
            Text(m, "id"), Text(m, "name"), Text(m, "kind"), Text(m, "state"), Text(m, "vcpus"), $"{Text(m, "memoryMiB")} MiB",
            m.TryGetProperty("network", out var network) && network.ValueKind == JsonValueKind.Object ? Text(network, "ip") : "",
        ]));
    }

    private static void AddIfSet(Dictionary<string, object?> request, string name, object? value)
    {
        if (value is not null)
        {
            request[name] = value;
        }
    }

    /// <summary><c>15m:pause</c>: the idle policy's body.</summary>
    private static object IdlePolicy(string text) =>
        text.Split(':', 2) is [var duration, var action] && TryParseDuration(duration) is { } after
            ? new { afterSeconds = (int)Math.Ceiling(after.TotalSeconds), action }
            : throw new CliException(ExitCodes.Usage, $"--idle takes DURATION:ACTION such as 15m:pause, not '{text}'.");

    private static KeyValuePair<string, string> Pair(string text) =>
        text.Split('=', 2) is [var key, var value] && key.Length > 0
            ? new(key, value)
            : throw new CliException(ExitCodes.Usage, $"'{text}' is not key=value.");

    /// <summary>90s, 5m, 2h, or a plain number of seconds.</summary>
    private static TimeSpan ParseDuration(System.CommandLine.Parsing.ArgumentResult result)
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        if (TryParseDuration(text) is { } duration)
        {
            return duration;
        }

        result.AddError($"'{text}' is not a duration: a number and s, m or h (90s, 5m).");
        return TimeSpan.Zero;
    }

    private static TimeSpan? TryParseDuration(string text)
    {
        var (number, unit) = text.Length > 0 && char.IsLetter(text[^1]) ? (text[..^1], text[^1]) : (text, 's');
        return double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var amount) && amount > 0 && unit is 's' or 'm' or 'h'
            ? unit switch { 'h' => TimeSpan.FromHours(amount), 'm' => TimeSpan.FromMinutes(amount), _ => TimeSpan.FromSeconds(amount) }
            : null;
    }
}
