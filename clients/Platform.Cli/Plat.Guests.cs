using System.CommandLine;
using System.Formats.Tar;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Platform.Cli;

public sealed partial class Plat
{
    private Command ExecCommand()
    {
        var machine = MachineArgument();
        var argv = new Argument<string[]>("command") { Description = "The command and its arguments, after --", Arity = ArgumentArity.OneOrMore };
        var env = new Option<string[]>("--env", "-e") { Description = "NAME=value for the command, repeatable" };
        var workdir = new Option<string?>("--workdir", "-w") { Description = "The directory it runs in" };
        var user = new Option<string?>("--user", "-u") { Description = "root, a uid, uid:gid or a user name" };
        var stdin = new Option<bool>("--interactive", "-i") { Description = "Send plat's standard input to the command (up to 1 MiB; with -t, all of it, as typed)" };
        var tty = new Option<bool>("--tty", "-t") { Description = "Run it on a terminal of its own, attached to this one (a shell, an editor)" };
        var detach = new Option<bool>("--detach", "-d") { Description = "Start it in the background and print its process id (plat processes attach, signal)" };
        var timeout = new Option<int?>("--timeout") { Description = "Seconds before the command is killed" };
        var command = new Command("exec", "Run a command inside a machine: its output streams here, and plat exits with its exit code")
        {
            machine, env, workdir, user, stdin, tty, detach, timeout, argv,
        };
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var id = await ResolveAsync(client, parsed.GetValue(machine)!, cancellationToken);
            var body = new Dictionary<string, object?> { ["command"] = parsed.GetValue(argv) };
            if (parsed.GetValue(env) is { Length: > 0 } pairs)
            {
                body["env"] = pairs.Select(Pair).ToDictionary(p => p.Key, p => p.Value);
            }

            AddIfSet(body, "cwd", parsed.GetValue(workdir));
            AddIfSet(body, "user", parsed.GetValue(user));
            AddIfSet(body, "timeoutSeconds", parsed.GetValue(timeout));
            if (parsed.GetValue(detach))
            {
                body["background"] = true;
                AddIfSet(body, "tty", parsed.GetValue(tty) ? true : null);
                var started = await client.PostAsync($"api/v1/machines/{id}/exec", body, cancellationToken);
                await output.WriteLineAsync(Json(parsed) ? JsonSerializer.Serialize(started, Indented) : started.GetProperty("processId").GetString());
                return ExitCodes.Ok;
            }

            if (parsed.GetValue(tty))
            {
                return await OnTerminalAsync(client, id, body, cancellationToken);
            }

            if (parsed.GetValue(stdin))
            {
                body["stdin"] = await input.ReadToEndAsync(cancellationToken);
            }

            using var request = new HttpRequestMessage(HttpMethod.Post, $"api/v1/machines/{id}/exec") { Content = System.Net.Http.Json.JsonContent.Create(body) };
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            var exitCode = ExitCodes.Failed;
            await foreach (var (name, data) in EventsAsync(await response.Content.ReadAsStreamAsync(cancellationToken), cancellationToken))
            {
                switch (name)
                {
                    case "stdout":
                        await output.WriteAsync(JsonSerializer.Deserialize<string>(data));
                        await output.FlushAsync(cancellationToken);
                        break;
                    case "stderr":
                        await error.WriteAsync(JsonSerializer.Deserialize<string>(data));
                        await error.FlushAsync(cancellationToken);
                        break;
                    case "exit":
                        var exit = JsonDocument.Parse(data).RootElement;
                        exitCode = exit.TryGetProperty("exitCode", out var code) && code.ValueKind == JsonValueKind.Number ? code.GetInt32() : ExitCodes.Failed;
                        if (exit.TryGetProperty("timedOut", out var timedOut) && timedOut.ValueKind == JsonValueKind.True)
                        {
                            await error.WriteLineAsync("plat: the command ran out of time and was killed.");
                        }

                        break;
                }
            }

            return exitCode;
        }));
        return command;
    }

    private Command LogsCommand()
    {
        var machine = MachineArgument();
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing what it writes, until it ends" };
        var since = new Option<string?>("--since") { Description = "Only what was written after this: a time (2026-12-07T14:00:00Z) or a duration back (15m)" };
        var tail = new Option<int?>("--tail", "-n") { Description = "Only the last lines of each stream" };
        var command = new Command("logs", "What a machine's main process wrote (a micro-VM's serial console)") { machine, follow, since, tail };
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var id = await ResolveAsync(client, parsed.GetValue(machine)!, cancellationToken);
            var query = new List<string>();
            if (parsed.GetValue(follow))
            {
                query.Add("follow=true");
            }

            if (parsed.GetValue(since) is { } from)
            {
                query.Add("since=" + Uri.EscapeDataString(from));
            }

            if (parsed.GetValue(tail) is { } lines)
            {
                query.Add($"tail={lines}");
            }

            using var request = new HttpRequestMessage(HttpMethod.Get, $"api/v1/machines/{id}/logs{(query.Count > 0 ? "?" + string.Join('&', query) : "")}");
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
            var decoder = Encoding.UTF8.GetDecoder();
            var buffer = new byte[16 * 1024];
            var characters = new char[Encoding.UTF8.GetMaxCharCount(buffer.Length)];
            int read;
            while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
            {
                var count = decoder.GetChars(buffer, 0, read, characters, 0);
                await output.WriteAsync(characters.AsMemory(0, count), cancellationToken);
                await output.FlushAsync(cancellationToken);
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    private Command CopyCommand()
    {
        var source = new Argument<string>("source") { Description = "A local path, or machine:path" };
        var target = new Argument<string>("target") { Description = "machine:path, or a local path" };
        var command = new Command("cp", "Copy a file or a directory into a machine (machine:path as the target) or out of one (as the source)") { source, target };
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var (from, to) = (parsed.GetValue(source)!, parsed.GetValue(target)!);
            if (RemoteOf(to) is { } into && RemoteOf(from) is null)
            {
                var id = await ResolveAsync(client, into.Machine, cancellationToken);
                await UploadAsync(client, id, from, into.Path, cancellationToken);
            }
            else if (RemoteOf(from) is { } outOf && RemoteOf(to) is null)
            {
                var id = await ResolveAsync(client, outOf.Machine, cancellationToken);
                await DownloadAsync(client, id, outOf.Path, to, cancellationToken);
            }
            else
            {
                throw new CliException(ExitCodes.Usage, "plat cp copies between this computer and a machine: one of source and target is machine:path, the other a local path.");
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    /// <summary><c>machine:/path</c> (a relative path is from the machine's root); null for a local path.</summary>
    private static (string Machine, string Path)? RemoteOf(string argument)
    {
        var colon = argument.IndexOf(':', StringComparison.Ordinal);
        return colon > 0 && !argument[..colon].Contains('/', StringComparison.Ordinal) ? (argument[..colon], argument[(colon + 1)..].TrimStart('/')) : null;
    }

    private static string FilesRoute(Guid id, string kind, string path) =>
        $"api/v1/machines/{id}/{kind}/{string.Join('/', path.Split('/', StringSplitOptions.RemoveEmptyEntries).Select(Uri.EscapeDataString))}";

    /// <summary>A file goes to the files API (its mode kept); a directory goes as a tar to the archive API.</summary>
    private async Task UploadAsync(GatewayClient client, Guid id, string local, string path, CancellationToken cancellationToken)
    {
        if (Directory.Exists(local))
        {
            var archive = Path.Combine(Path.GetTempPath(), $"plat-{Guid.NewGuid():N}.tar");
            try
            {
                await TarFile.CreateFromDirectoryAsync(local, archive, includeBaseDirectory: false, cancellationToken);
                await using var tar = File.OpenRead(archive);
                using var request = new HttpRequestMessage(HttpMethod.Put, FilesRoute(id, "archive", path)) { Content = new StreamContent(tar) };
                request.Content.Headers.ContentLength = tar.Length;
                request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/x-tar");
                using var _ = await client.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken);
            }
            finally
            {
                File.Delete(archive);
            }

            return;
        }

        if (!File.Exists(local))
        {
            throw new CliException(ExitCodes.NotFound, $"no file or directory {local} here.");
        }

        await using var file = File.OpenRead(local);
        var mode = OperatingSystem.IsWindows() ? "" : "?mode=" + Convert.ToString((int)File.GetUnixFileMode(local) & 0x1FF, 8).PadLeft(4, '0');
        using var upload = new HttpRequestMessage(HttpMethod.Put, FilesRoute(id, "files", path) + mode) { Content = new StreamContent(file) };
        upload.Content.Headers.ContentLength = file.Length;
        upload.Content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var done = await client.SendAsync(upload, HttpCompletionOption.ResponseContentRead, cancellationToken);
    }

    /// <summary>A file's bytes, or a directory (the files API answers its listing as JSON) as a tar, extracted.</summary>
    private async Task DownloadAsync(GatewayClient client, Guid id, string path, string local, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, FilesRoute(id, "files", path));
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        if (response.Content.Headers.ContentType?.MediaType == "application/json")
        {
            Directory.CreateDirectory(local);
            using var archive = new HttpRequestMessage(HttpMethod.Get, FilesRoute(id, "archive", path));
            using var tar = await client.SendAsync(archive, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            await TarFile.ExtractToDirectoryAsync(await tar.Content.ReadAsStreamAsync(cancellationToken), local, overwriteFiles: true, cancellationToken);
            return;
        }

        var target = Directory.Exists(local) ? Path.Combine(local, Path.GetFileName(path)) : local;
        var staging = target + ".plat-part";
        try
        {
            await using (var file = File.Create(staging))
            {
                await (await response.Content.ReadAsStreamAsync(cancellationToken)).CopyToAsync(file, cancellationToken);
            }

            File.Move(staging, target, overwrite: true);
        }
        finally
        {
            File.Delete(staging);
        }
    }

    /// <summary>Server-sent events: each event's name and data (its data lines joined).</summary>
    private static async IAsyncEnumerable<(string Name, string Data)> EventsAsync(Stream stream, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var name = "message";
        var data = new StringBuilder();
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.Length == 0)
            {
                if (data.Length > 0)
                {
                    yield return (name, data.ToString());
                }

                (name, data) = ("message", new StringBuilder());
            }
            else if (line.StartsWith("event:", StringComparison.Ordinal))
            {
                name = line[6..].Trim();
            }
            else if (line.StartsWith("data:", StringComparison.Ordinal))
            {
                data.Append(data.Length > 0 ? "\n" : "").Append(line[5..].TrimStart());
            }
        }
    }
}
