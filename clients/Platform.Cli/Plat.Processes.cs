using System.CommandLine;
using System.Text.Json;

namespace Platform.Cli;

public sealed partial class Plat
{
    private static readonly string[] ProcessColumns = ["PROCESS", "STATE", "EXIT", "TTY", "STARTED", "COMMAND"];

    private Command ProcessesCommand()
    {
        var command = new Command("processes", "The commands exec'd into a machine: list them, attach to one, signal one")
        {
            ListProcessesCommand(),
            AttachProcessCommand(),
            SignalProcessCommand(),
        };
        command.Aliases.Add("ps");
        return command;
    }

    private Command ListProcessesCommand()
    {
        var machine = MachineArgument();
        var command = new Command("list", "A machine's exec'd processes, running and recently ended") { machine };
        command.Aliases.Add("ls");
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var id = await ResolveAsync(client, parsed.GetValue(machine)!, cancellationToken);
            var processes = (await client.GetAsync($"api/v1/machines/{id}/processes", cancellationToken)).GetProperty("items").EnumerateArray().ToList();
            if (Json(parsed))
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(processes, Indented));
                return ExitCodes.Ok;
            }

            await PrintTableAsync(ProcessColumns, processes.Select(p => (IReadOnlyList<string>)
            [
                Text(p, "processId"), Text(p, "state"), Text(p, "exitCode"), Text(p, "tty") == "True" ? "yes" : "", Text(p, "startedAt"),
                string.Join(' ', p.GetProperty("command").EnumerateArray().Select(a => a.GetString())),
            ]));
            return ExitCodes.Ok;
        }));
        return command;
    }

    private Command AttachProcessCommand()
    {
        var machine = MachineArgument();
        var process = new Argument<Guid>("process") { Description = "The process's id (plat processes list)" };
        var command = new Command("attach", "Attach to an exec'd process: its output from the beginning, then live, and what is typed goes in; leaving detaches") { machine, process };
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var id = await ResolveAsync(client, parsed.GetValue(machine)!, cancellationToken);
            return await AttachAsync(client, id, parsed.GetValue(process), cancellationToken);
        }));
        return command;
    }

    private Command SignalProcessCommand()
    {
        var machine = MachineArgument();
        var process = new Argument<Guid>("process") { Description = "The process's id (plat processes list)" };
        var signal = new Option<string>("--signal", "-s") { Description = "TERM, INT, KILL, HUP, … or its number", DefaultValueFactory = _ => "TERM" };
        var command = new Command("signal", "Send an exec'd process (its process group) a signal") { machine, process, signal };
        command.Aliases.Add("kill");
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var id = await ResolveAsync(client, parsed.GetValue(machine)!, cancellationToken);
            await client.PostAsync($"api/v1/machines/{id}/processes/{parsed.GetValue(process)}/signal", new { signal = parsed.GetValue(signal) }, cancellationToken);
            return ExitCodes.Ok;
        }));
        return command;
    }
}
