using System.CommandLine;
using System.Text.Json;

namespace Platform.Cli;

public sealed partial class Plat
{
    private static readonly string[] SnapshotColumns = ["ID", "NAME", "MACHINE", "KIND", "STATE", "CONTENTS", "SIZE"];

    private Command SnapshotsCommand()
    {
        var command = new Command("snapshots", "Snapshots of machines: take, list, remove (machines are made from them with 'machines create --from-snapshot')")
        {
            TakeSnapshotCommand(),
            ListSnapshotsCommand(),
            GetSnapshotCommand(),
            RemoveSnapshotCommand(),
        };
        command.Aliases.Add("snapshot");
        return command;
    }

    private Command TakeSnapshotCommand()
    {
        var machine = MachineArgument();
        var name = new Option<string?>("--name", "-n") { Description = "A DNS label for the snapshot" };
        var wait = new Option<bool>("--wait", "-w") { Description = "Wait until it is ready (or failed)" };
        var timeout = TimeoutOption("How long --wait waits");
        var command = new Command("take", "Snapshot a running or paused machine") { machine, name, wait, timeout };
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var id = await ResolveAsync(client, parsed.GetValue(machine)!, cancellationToken);
            var snapshot = await client.PostAsync($"api/v1/machines/{id}/snapshots", new { name = parsed.GetValue(name) }, cancellationToken);
            if (parsed.GetValue(wait))
            {
                snapshot = await WaitForSnapshotAsync(client, snapshot.GetProperty("id").GetGuid(), parsed.GetValue(timeout), cancellationToken);
            }

            await PrintSnapshotsAsync(parsed, [snapshot], single: true);
            return Text(snapshot, "state") == "failed" ? ExitCodes.Failed : ExitCodes.Ok;
        }));
        return command;
    }

    private Command ListSnapshotsCommand()
    {
        var machine = new Option<string?>("--machine", "-m") { Description = "Only the snapshots of this machine (id or name)" };
        var command = new Command("list", "The tenant's snapshots") { machine };
        command.Aliases.Add("ls");
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var path = parsed.GetValue(machine) is { } wanted
                ? $"api/v1/snapshots?limit=100&machineId={await ResolveAsync(client, wanted, cancellationToken)}"
                : "api/v1/snapshots?limit=100";
            await PrintSnapshotsAsync(parsed, await PagesAsync(client, path, cancellationToken), single: false);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private Command GetSnapshotCommand()
    {
        var snapshot = new Argument<Guid>("snapshot") { Description = "The snapshot's id" };
        var command = new Command("get", "One snapshot") { snapshot };
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            await PrintSnapshotsAsync(parsed, [await client.GetAsync($"api/v1/snapshots/{parsed.GetValue(snapshot)}", cancellationToken)], single: true);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private Command RemoveSnapshotCommand()
    {
        var snapshot = new Argument<Guid>("snapshot") { Description = "The snapshot's id" };
        var command = new Command("rm", "Delete a snapshot (refused while machines made from it are not destroyed)") { snapshot };
        command.Aliases.Add("delete");
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            await PrintSnapshotsAsync(parsed, [await client.DeleteAsync($"api/v1/snapshots/{parsed.GetValue(snapshot)}", cancellationToken)], single: true);
            return ExitCodes.Ok;
        }));
        return command;
    }

    /// <summary>fork: one snapshot of the machine, and --count machines made from it; with --wait, the machines once they run.</summary>
    private Command ForkMachineCommand()
    {
        var machine = MachineArgument();
        var count = new Option<int>("--count", "-c") { Description = "How many machines to make (1–100)", DefaultValueFactory = _ => 1 };
        var wait = new Option<bool>("--wait", "-w") { Description = "Wait until every fork runs (or failed)" };
        var timeout = TimeoutOption("How long --wait waits");
        var command = new Command("fork", "Make machines from one checkpoint of a running machine, each with its own identity") { machine, count, wait, timeout };
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var id = await ResolveAsync(client, parsed.GetValue(machine)!, cancellationToken);
            var fork = await client.PostAsync($"api/v1/machines/{id}/fork", new { count = parsed.GetValue(count) }, cancellationToken);
            var operation = $"api/v1/operations/{fork.GetProperty("operationId").GetGuid()}";
            var deadline = DateTimeOffset.UtcNow + parsed.GetValue(timeout);
            var view = await client.GetAsync(operation, cancellationToken);
            while (parsed.GetValue(wait) && Text(view, "status") == "pending")
            {
                if (DateTimeOffset.UtcNow > deadline)
                {
                    throw new CliException(ExitCodes.TimedOut, $"the fork {Text(fork, "operationId")} is still pending after {parsed.GetValue(timeout).TotalSeconds:0} s.");
                }

                await Task.Delay(TimeSpan.FromMilliseconds(250), cancellationToken);
                view = await client.GetAsync(operation, cancellationToken);
            }

            if (Json(parsed))
            {
                await PrintJsonAsync(parsed.GetValue(wait) ? view : fork);
            }
            else if (parsed.GetValue(wait))
            {
                await PrintTableAsync(["MACHINE", "STATUS", "STATE", "ERROR"], view.GetProperty("forks").EnumerateArray()
                    .Select(f => (IReadOnlyList<string>)[Text(f, "machineId"), Text(f, "status"), Text(f, "machineState"), Text(f, "error")]));
            }
            else
            {
                await output.WriteLineAsync($"fork {Text(fork, "operationId")} from snapshot {Text(fork, "snapshotId")}: " +
                    string.Join(' ', fork.GetProperty("machineIds").EnumerateArray().Select(m => m.GetString())));
            }

            return parsed.GetValue(wait) && Text(view, "status") != "succeeded" ? ExitCodes.Failed : ExitCodes.Ok;
        }));
        return command;
    }

    private static async Task<JsonElement> WaitForSnapshotAsync(GatewayClient client, Guid id, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        while (true)
        {
            var snapshot = await client.GetAsync($"api/v1/snapshots/{id}", cancellationToken);
            if (Text(snapshot, "state") != "creating")
            {
                return snapshot;
            }

            if (DateTimeOffset.UtcNow > deadline)
            {
                throw new CliException(ExitCodes.TimedOut, $"snapshot {id} is still being made after {timeout.TotalSeconds:0} s.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(250), cancellationToken);
        }
    }

    private async Task PrintSnapshotsAsync(ParseResult parsed, IReadOnlyList<JsonElement> snapshots, bool single)
    {
        if (Json(parsed))
        {
            await output.WriteLineAsync(single ? JsonSerializer.Serialize(snapshots[0], Indented) : JsonSerializer.Serialize(snapshots, Indented));
            return;
        }

        await PrintTableAsync(SnapshotColumns, snapshots.Select(s => (IReadOnlyList<string>)
        [
            Text(s, "id"), Text(s, "name"), Text(s, "machineName"), Text(s, "kind"), Text(s, "state"), Text(s, "contents"),
            s.TryGetProperty("sizeBytes", out var size) && size.ValueKind == JsonValueKind.Number ? $"{size.GetInt64() / 1024.0 / 1024.0:0.#} MiB" : "",
        ]));
    }
}
