using System.Globalization;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using MassTransit;
using Microsoft.AspNetCore.Mvc;
using Platform.Contracts;
using Platform.Contracts.Provisioning;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;
using Platform.Provisioning.Drivers.Guests;

namespace Platform.HostAgent.Guests;

/// <summary>
/// The agent's data plane: exec, processes, files and archives of the machines it runs, at the paths the public API
/// has, for provisioning to forward to. Every request carries a grant (<see cref="MachineGrants"/>) signed by a
/// provisioning instance for this host and this machine; requests that change the machine need a write grant.
/// </summary>
public static partial class GuestEndpoints
{
    private static readonly TimeSpan KeepAliveInterval = TimeSpan.FromSeconds(15);

    public static void MapGuests(this IEndpointRouteBuilder app)
    {
        var machine = app.MapGroup("/api/v1/machines/{machineId:guid}");
        machine.MapPost("/exec", ExecAsync);
        machine.MapGet("/processes", ListProcessesAsync);
        machine.MapGet("/processes/{processId:guid}", GetProcessAsync);
        machine.MapGet("/processes/{processId:guid}/output", OutputAsync);
        machine.MapPost("/processes/{processId:guid}/stdin", StdinAsync);
        machine.MapPost("/processes/{processId:guid}/signal", SignalAsync);
        machine.MapPost("/processes/{processId:guid}/resize", ResizeAsync);
        machine.MapGet("/processes/{processId:guid}/attach", AttachAsync);
        machine.MapGet("/files/{**path}", ReadFileAsync);
        machine.MapPut("/files/{**path}", WriteFileAsync);
        machine.MapDelete("/files/{**path}", DeleteFileAsync);
        machine.MapGet("/archive/{**path}", ReadArchiveAsync);
        machine.MapPut("/archive/{**path}", WriteArchiveAsync);
        machine.MapGet("/logs", LogsAsync);
        machine.MapGet("/console", ConsoleAsync);
    }

    /// <summary>
    /// What the machine's main process wrote: since <c>since</c> (a time, or a duration back from now; all that is kept
    /// when absent), its last <c>tail</c> lines per stream (all when absent), then, with <c>follow=true</c>, what it writes
    /// next until it ends. Plain text (stdout and stderr as they come), or events (<c>stdout</c>, <c>stderr</c>, then
    /// <c>end</c>) with <c>Accept: text/event-stream</c>.
    /// </summary>
    private static async Task LogsAsync(Guid machineId, HttpContext http, GrantKeys keys, HostMachines machines, KeptLogs kept, HostIdentity host, TimeProvider time, bool? follow, int? tail, string? since)
    {
        var grant = await AuthorizeAsync(http, machineId, write: false, keys, host);
        if (tail is < 0 or > 100_000)
        {
            throw Problems.Invalid("tail", "must be between 0 and 100000 lines");
        }

        var query = new LogQuery(tail, follow ?? false, since is null ? null : SinceOf(since, time.GetUtcNow()));

        IMachineLogs logs;
        if (RunningOf(machineId, grant, machines) is { } running)
        {
            logs = running.Machine as IMachineLogs
                ?? throw new ProblemException(ProblemTypes.ExecUnsupported, StatusCodes.Status409Conflict, "This machine's output cannot be read.", $"A {running.Launch.Driver} machine's output is not kept by its host.");
        }
        else
        {
            // It ran here and stopped: what it wrote then, for as long as the host keeps it (following it ends at once).
            logs = kept.Find(machineId, grant.TenantId)
                ?? throw new ProblemException(ProblemTypes.MachineNotRunning, StatusCodes.Status409Conflict, "The machine is not running and its logs are not kept.",
                    $"Machine {machineId} does not run on host {host.Name} now, and the host keeps no logs of it (they are kept for a while after it stops: Platform:Agent:Guests:LogRetention).");
        }

        var events = WantsEvents(http);
        http.Response.ContentType = events ? "text/event-stream" : "text/plain; charset=utf-8";
        http.Response.Headers.CacheControl = "no-cache";
        http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseBodyFeature>()?.DisableBuffering();
        await http.Response.Body.FlushAsync(http.RequestAborted);
        var decoders = new Dictionary<string, Decoder>();
        try
        {
            await foreach (var chunk in logs.ReadLogsAsync(query, http.RequestAborted))
            {
                if (events)
                {
                    var characters = new char[Encoding.UTF8.GetMaxCharCount(chunk.Data.Length)];
                    var decoder = decoders.TryGetValue(chunk.Stream, out var known) ? known : decoders[chunk.Stream] = Encoding.UTF8.GetDecoder();
                    var count = decoder.GetChars(chunk.Data.Span, characters, flush: false);
                    await http.Response.WriteAsync($"event: {chunk.Stream}\ndata: {JsonSerializer.Serialize(new string(characters, 0, count))}\n\n", http.RequestAborted);
                }
                else
                {
                    await http.Response.Body.WriteAsync(chunk.Data, http.RequestAborted);
                }

                await http.Response.Body.FlushAsync(http.RequestAborted);
            }

            if (events)
            {
                await http.Response.WriteAsync("event: end\ndata: {}\n\n", http.RequestAborted);
            }
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            // The reader left.
        }
    }

    private static async Task ExecAsync(Guid machineId, HttpContext http, GuestProcesses processes, GuestOptions options, GrantKeys keys, HostMachines machines, HostIdentity host, CancellationToken cancellationToken)
    {
        var (grant, launch, access) = await EnterAsync(http, machineId, write: true, keys, machines, host);
        var request = await ReadJsonAsync<ExecRequest>(http);
        if (!request.Tty && (request.Columns is not null || request.Rows is not null))
        {
            throw Problems.Invalid("tty", "columns and rows size a terminal: ask for tty too");
        }

        var command = new GuestCommand(request.Command ?? [])
        {
            Environment = request.Env ?? new Dictionary<string, string>(),
            WorkingDirectory = request.Cwd,
            User = request.User,
            Terminal = request.Tty ? new TerminalSize(request.Columns ?? TerminalSize.Default.Columns, request.Rows ?? TerminalSize.Default.Rows) : null,
        };
        if (command.Problem() is { } problem)
        {
            throw Problems.Invalid(problem.Split(' ')[0] switch { "env" => "env", "cwd" => "cwd", "user" => "user", "tty" => "tty", _ => "command" }, problem);
        }

        if (request.TimeoutSeconds is { } seconds && (seconds <= 0 || seconds > options.MaxTimeout.TotalSeconds))
        {
            throw Problems.Invalid("timeoutSeconds", $"must be between 1 and {options.MaxTimeout.TotalSeconds:0}");
        }

        if (request.Stdin is { Length: > GuestCommand.MaxBytes * 4 })
        {
            throw Problems.Invalid("stdin", $"is at most {GuestCommand.MaxBytes * 4} characters here; stream more with POST …/processes/{{id}}/stdin");
        }

        var timeout = request.TimeoutSeconds is { } limit ? TimeSpan.FromSeconds(limit) : request.Background ? options.MaxTimeout : options.DefaultTimeout;
        // The process is the machine's, not the request's: a background one outlives it, whatever happens to the connection.
        var process = await processes.StartAsync(machineId, launch.TenantId, access, command, timeout, request.Background, grant.Actor, CancellationToken.None);
        if (request.Stdin is not null || !request.Background)
        {
            await process.WriteInputAsync(Encoding.UTF8.GetBytes(request.Stdin ?? ""), close: true, CancellationToken.None);
        }

        if (request.Background)
        {
            http.Response.StatusCode = StatusCodes.Status202Accepted;
            http.Response.Headers.Location = $"/api/v1/machines/{machineId}/processes/{process.Id}";
            await http.Response.WriteAsJsonAsync(new { processId = process.Id }, PlatformJson.Options, cancellationToken);
            return;
        }

        // A caller who waits and leaves has its command stopped, as a terminal's would be.
        await using var leaving = http.RequestAborted.Register(() => process.Signal(9));
        if (WantsEvents(http))
        {
            await StreamOutputAsync(http, process, 0, follow: true);
            return;
        }

        await process.Ended.WaitAsync(http.RequestAborted);
        var (stdout, stderr, truncated) = Collect(process.Output, options.MaxReplyBytesPerStream);
        await http.Response.WriteAsJsonAsync(new ExecResult(process.ExitCode ?? -1, stdout, stderr, Math.Round(process.Duration.TotalMilliseconds, 1), truncated, process.TimedOut, process.Id),
            PlatformJson.Options, cancellationToken);
    }

    private static async Task ListProcessesAsync(Guid machineId, HttpContext http, GuestProcesses processes, GrantKeys keys, HostMachines machines, HostIdentity host)
    {
        await AuthorizeAsync(http, machineId, write: false, keys, host);
        await http.Response.WriteAsJsonAsync(new { items = processes.Of(machineId).Select(p => p.View()).ToList() }, PlatformJson.Options);
    }

    private static async Task GetProcessAsync(Guid machineId, Guid processId, HttpContext http, GuestProcesses processes, GrantKeys keys, HostIdentity host)
    {
        await AuthorizeAsync(http, machineId, write: false, keys, host);
        await http.Response.WriteAsJsonAsync(FindProcess(processes, machineId, processId).View(), PlatformJson.Options);
    }

    private static async Task OutputAsync(Guid machineId, Guid processId, HttpContext http, GuestProcesses processes, GrantKeys keys, HostIdentity host, bool? follow, long? offset)
    {
        await AuthorizeAsync(http, machineId, write: false, keys, host);
        var process = FindProcess(processes, machineId, processId);
        var from = offset ?? (long.TryParse(http.Request.Headers["Last-Event-ID"].ToString(), CultureInfo.InvariantCulture, out var last) ? last : 0);
        if (from < 0)
        {
            throw Problems.Invalid("offset", "must be 0 or more");
        }

        await StreamOutputAsync(http, process, from, follow ?? false);
    }

    private static async Task StdinAsync(Guid machineId, Guid processId, HttpContext http, GuestProcesses processes, GuestOptions options, GrantKeys keys, HostIdentity host, bool? eof)
    {
        await AuthorizeAsync(http, machineId, write: true, keys, host);
        var process = FindProcess(processes, machineId, processId);
        using var body = new MemoryStream();
        const long limit = GuestCommand.MaxBytes * 16;
        await GuestFiles.CopyAtMostAsync(http.Request.Body, body, limit, () => new ProblemException(ProblemTypes.PayloadTooLarge, StatusCodes.Status413PayloadTooLarge, "The input is too large.",
            $"One request writes at most {limit} bytes of input; send more in several.", new Dictionary<string, object?> { ["limitBytes"] = limit }), http.RequestAborted);
        if (!await process.WriteInputAsync(body.ToArray(), eof ?? false, http.RequestAborted))
        {
            throw Problems.Conflict("The process's input is closed already.");
        }

        http.Response.StatusCode = StatusCodes.Status204NoContent;
    }

    /// <summary>Resizes a process's terminal: <c>{"columns", "rows"}</c>.</summary>
    private static async Task ResizeAsync(Guid machineId, Guid processId, HttpContext http, GuestProcesses processes, GrantKeys keys, HostIdentity host)
    {
        await AuthorizeAsync(http, machineId, write: true, keys, host);
        var process = FindProcess(processes, machineId, processId);
        var size = await ReadJsonAsync<TerminalSize>(http);
        if (size.Problem() is { } problem)
        {
            throw Problems.Invalid("columns", problem);
        }

        if (process.EndedAt is not null)
        {
            throw Problems.Conflict("The process has ended.");
        }

        if (!process.Resize(size))
        {
            throw Problems.Conflict("The process has no terminal: start it with tty to have one.");
        }

        http.Response.StatusCode = StatusCodes.Status204NoContent;
    }

    /// <summary>
    /// A process's terminal (or its pipes) over a WebSocket: binary messages from the client are its input, text messages
    /// are controls (<c>{"type":"resize","columns","rows"}</c>, <c>{"type":"signal","signal"}</c>, <c>{"type":"eof"}</c>);
    /// binary messages to the client are its output from <c>offset</c> (0 unless given), and once it has ended and all
    /// its output is sent, one text message <c>{"type":"exit","exitCode","timedOut"}</c> before the close.
    /// </summary>
    private static async Task AttachAsync(Guid machineId, Guid processId, HttpContext http, GuestProcesses processes, GrantKeys keys, HostIdentity host, long? offset)
    {
        await AuthorizeAsync(http, machineId, write: true, keys, host);
        var process = FindProcess(processes, machineId, processId);
        RequireWebSocket(http, "Attaching is a WebSocket.", "without one, read the output with GET …/output and write input with POST …/stdin");

        if (offset is < 0)
        {
            throw Problems.Invalid("offset", "must be 0 or more");
        }

        using var socket = await http.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext { KeepAliveInterval = KeepAliveInterval });
        using var leaving = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
        var input = ReceiveAttachedInputAsync(socket, process, leaving.Token);
        try
        {
            var position = offset ?? 0;
            while (true)
            {
                var (chunks, _, completed, changed) = process.Output.ReadFrom(position);
                foreach (var chunk in chunks)
                {
                    await socket.SendAsync(chunk.After(position), WebSocketMessageType.Binary, endOfMessage: true, leaving.Token);
                    position = chunk.End;
                }

                if (completed)
                {
                    var exit = JsonSerializer.SerializeToUtf8Bytes(new { type = "exit", exitCode = process.ExitCode ?? -1, timedOut = process.TimedOut }, PlatformJson.Options);
                    await socket.SendAsync(exit, WebSocketMessageType.Text, endOfMessage: true, leaving.Token);
                    await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "the process ended", leaving.Token);
                    break;
                }

                if (await Task.WhenAny(changed, input) == input)
                {
                    // The client closed its side: the process goes on, as a background process does.
                    if (socket.State == WebSocketState.CloseReceived)
                    {
                        await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "detached", leaving.Token);
                    }

                    break;
                }
            }
        }
        catch (Exception exception) when (exception is WebSocketException or OperationCanceledException)
        {
            // The client went away; the process goes on.
        }
        finally
        {
            await leaving.CancelAsync();
            await input;
        }
    }

    /// <summary>A micro-VM's serial console over a WebSocket: binary messages both ways, what is typed and what it shows.</summary>
    private static async Task ConsoleAsync(Guid machineId, HttpContext http, GrantKeys keys, HostMachines machines, HostIdentity host)
    {
        var grant = await AuthorizeAsync(http, machineId, write: true, keys, host);
        var running = RunningOf(machineId, grant, machines) ?? throw NotRunning(machineId, host);
        if (running.Machine is not IMachineConsole console)
        {
            throw new ProblemException(ProblemTypes.ExecUnsupported, StatusCodes.Status409Conflict, "This machine has no serial console.",
                $"A {running.Launch.Driver} machine has none: run a shell on a terminal instead (exec with tty, then attach).");
        }

        RequireWebSocket(http, "The console is a WebSocket.", "its output alone is GET …/logs");

        Stream stream;
        try
        {
            stream = await console.OpenConsoleAsync(http.RequestAborted);
        }
        catch (GuestException busy)
        {
            throw Problems.Conflict(busy.Message);
        }

        await using (stream)
        {
            using var socket = await http.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext { KeepAliveInterval = KeepAliveInterval });
            using var leaving = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
            var typed = TypeIntoConsoleAsync(socket, stream, leaving.Token);
            var buffer = new byte[16 * 1024];
            var reading = stream.ReadAsync(buffer, leaving.Token).AsTask();
            try
            {
                // Until the console closes (the machine ended) or the client does (it detached, with a close of its own).
                while (await Task.WhenAny(reading, typed) == reading && await reading is var read and > 0)
                {
                    await socket.SendAsync(buffer.AsMemory(0, read), WebSocketMessageType.Binary, endOfMessage: true, leaving.Token);
                    reading = stream.ReadAsync(buffer, leaving.Token).AsTask();
                }

                if (socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
                {
                    await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, typed.IsCompleted ? "detached" : "the machine ended", CancellationToken.None);
                }
            }
            catch (Exception exception) when (exception is WebSocketException or OperationCanceledException or IOException)
            {
                // The client or the machine went away.
            }
            finally
            {
                await leaving.CancelAsync();
                await typed;
                await reading.ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
    }

    private static async Task TypeIntoConsoleAsync(WebSocket socket, Stream console, CancellationToken cancellationToken)
    {
        var buffer = new byte[4096];
        try
        {
            while (socket.State is WebSocketState.Open)
            {
                var received = await socket.ReceiveAsync(buffer.AsMemory(), cancellationToken);
                if (received.MessageType == WebSocketMessageType.Close)
                {
                    return;
                }

                await console.WriteAsync(buffer.AsMemory(0, received.Count), cancellationToken);
            }
        }
        catch (Exception exception) when (exception is WebSocketException or OperationCanceledException or IOException)
        {
            // The client or the machine went away.
        }
    }

    private static async Task ReceiveAttachedInputAsync(WebSocket socket, GuestProcess process, CancellationToken cancellationToken)
    {
        var buffer = new byte[64 * 1024];
        var control = new MemoryStream();
        try
        {
            while (socket.State is WebSocketState.Open)
            {
                var received = await socket.ReceiveAsync(buffer.AsMemory(), cancellationToken);
                switch (received.MessageType)
                {
                    case WebSocketMessageType.Close:
                        return;
                    case WebSocketMessageType.Binary:
                        await process.WriteInputAsync(buffer.AsMemory(0, received.Count), close: false, cancellationToken);
                        break;
                    case WebSocketMessageType.Text:
                        if (control.Length + received.Count > 4096)
                        {
                            await socket.CloseAsync(WebSocketCloseStatus.MessageTooBig, "a control message is at most 4096 bytes", cancellationToken);
                            return;
                        }

                        control.Write(buffer, 0, received.Count);
                        if (received.EndOfMessage)
                        {
                            await ControlAsync(process, control.ToArray(), cancellationToken);
                            control.SetLength(0);
                        }

                        break;
                }
            }
        }
        catch (Exception exception) when (exception is WebSocketException or OperationCanceledException)
        {
            // The client went away, or the output side ended the connection.
        }
    }

    /// <summary>One control message of an attached client; what is not one is ignored, as a terminal ignores a stray escape.</summary>
    private static async Task ControlAsync(GuestProcess process, byte[] message, CancellationToken cancellationToken)
    {
        AttachControl? control;
        try
        {
            control = JsonSerializer.Deserialize<AttachControl>(message, PlatformJson.Options);
        }
        catch (JsonException)
        {
            return;
        }

        switch (control?.Type)
        {
            case "resize" when control is { Columns: { } columns, Rows: { } rows } && new TerminalSize(columns, rows) is { } size && size.Problem() is null:
                process.Resize(size);
                break;
            case "signal" when control.Signal is { } signal && Signals.Number(signal) is { } number && process.EndedAt is null:
                process.Signal(number);
                break;
            case "eof":
                await process.WriteInputAsync(ReadOnlyMemory<byte>.Empty, close: true, cancellationToken);
                break;
        }
    }

    private static async Task SignalAsync(Guid machineId, Guid processId, HttpContext http, GuestProcesses processes, GrantKeys keys, HostIdentity host)
    {
        await AuthorizeAsync(http, machineId, write: true, keys, host);
        var process = FindProcess(processes, machineId, processId);
        var request = await ReadJsonAsync<SignalRequest>(http);
        if (Signals.Number(request.Signal) is not { } number)
        {
            throw Problems.Invalid("signal", $"must be one of {string.Join(", ", Signals.Names)} or a number from 1 to 64");
        }

        if (process.EndedAt is not null)
        {
            throw Problems.Conflict("The process has ended.");
        }

        process.Signal(number);
        http.Response.StatusCode = StatusCodes.Status202Accepted;
    }

    private static async Task ReadFileAsync(Guid machineId, string? path, HttpContext http, GrantKeys keys, HostMachines machines, HostIdentity host, CancellationToken cancellationToken)
    {
        var (_, _, access) = await EnterAsync(http, machineId, write: false, keys, machines, host);
        var file = PathInMachine(path);
        var entry = await GuestFiles.StatAsync(access, file, cancellationToken);
        if (entry.Type == "directory")
        {
            var entries = await GuestFiles.ListAsync(access, file, cancellationToken);
            await http.Response.WriteAsJsonAsync(new { path = file, items = entries }, PlatformJson.Options, cancellationToken);
            return;
        }

        if (entry.Type != "file")
        {
            throw Problems.Conflict($"{file} is not a regular file or a directory.");
        }

        await using var reading = await GuestFiles.ReadAsync(access, file, cancellationToken);
        reading.StandardInput.Close();
        http.Response.ContentType = "application/octet-stream";
        http.Response.Headers.LastModified = entry.ModifiedAt.ToString("R", CultureInfo.InvariantCulture);
        await reading.StandardOutput.CopyToAsync(http.Response.Body, cancellationToken);
        await reading.Exited;
    }

    private static async Task WriteFileAsync(Guid machineId, string? path, string? mode, HttpContext http, GuestOptions options, GrantKeys keys, HostMachines machines, HostIdentity host, GuestReports reports, TimeProvider time, CancellationToken cancellationToken)
    {
        var (grant, launch, access) = await EnterAsync(http, machineId, write: true, keys, machines, host);
        var file = PathInMachine(path);
        var fileMode = mode ?? "0644";
        if (!FileMode().IsMatch(fileMode))
        {
            throw Problems.Invalid("mode", "must be octal permissions such as 644 or 0755");
        }

        var size = UploadSize(http, options);
        var sha256 = await GuestFiles.WriteAsync(access, file, fileMode, size, http.Request.Body, cancellationToken);
        await reports.PublishAsync(new GuestFileChanged(machineId, launch.TenantId, host.HostId, Guid.CreateVersion7(), file, "written", size, sha256, false, grant.Actor, time.GetUtcNow()));
        http.Response.StatusCode = StatusCodes.Status201Created;
        await http.Response.WriteAsJsonAsync(new { path = file, size, sha256 }, PlatformJson.Options, cancellationToken);
    }

    private static async Task DeleteFileAsync(Guid machineId, string? path, bool? recursive, HttpContext http, GrantKeys keys, HostMachines machines, HostIdentity host, GuestReports reports, TimeProvider time, CancellationToken cancellationToken)
    {
        var (grant, launch, access) = await EnterAsync(http, machineId, write: true, keys, machines, host);
        var file = PathInMachine(path);
        if (file == "/")
        {
            throw Problems.Invalid("path", "the machine's root cannot be deleted");
        }

        await GuestFiles.DeleteAsync(access, file, recursive ?? false, cancellationToken);
        await reports.PublishAsync(new GuestFileChanged(machineId, launch.TenantId, host.HostId, Guid.CreateVersion7(), file, "deleted", null, null, recursive ?? false, grant.Actor, time.GetUtcNow()));
        http.Response.StatusCode = StatusCodes.Status204NoContent;
    }

    private static async Task ReadArchiveAsync(Guid machineId, string? path, HttpContext http, GrantKeys keys, HostMachines machines, HostIdentity host, CancellationToken cancellationToken)
    {
        var (_, _, access) = await EnterAsync(http, machineId, write: false, keys, machines, host);
        await using var archive = await GuestFiles.ArchiveAsync(access, PathInMachine(path), cancellationToken);
        archive.StandardInput.Close();
        http.Response.ContentType = "application/x-tar";
        await archive.StandardOutput.CopyToAsync(http.Response.Body, cancellationToken);
        await archive.Exited;
    }

    private static async Task WriteArchiveAsync(Guid machineId, string? path, HttpContext http, GuestOptions options, GrantKeys keys, HostMachines machines, HostIdentity host, GuestReports reports, TimeProvider time, CancellationToken cancellationToken)
    {
        var (grant, launch, access) = await EnterAsync(http, machineId, write: true, keys, machines, host);
        var directory = PathInMachine(path);
        var size = UploadSize(http, options);
        await GuestFiles.ExtractAsync(access, directory, size, http.Request.Body, cancellationToken);
        await reports.PublishAsync(new GuestFileChanged(machineId, launch.TenantId, host.HostId, Guid.CreateVersion7(), directory, "written", size, null, true, grant.Actor, time.GetUtcNow()));
        http.Response.StatusCode = StatusCodes.Status204NoContent;
    }

    /// <summary>Output as Server-Sent Events: <c>stdout</c> and <c>stderr</c> chunks (<c>id:</c> the offset after each), then <c>exit</c> once it ended.</summary>
    private static async Task StreamOutputAsync(HttpContext http, GuestProcess process, long offset, bool follow)
    {
        http.Response.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseBodyFeature>()?.DisableBuffering();
        await http.Response.Body.FlushAsync(http.RequestAborted);
        var decoders = new Dictionary<string, Decoder> { ["stdout"] = Encoding.UTF8.GetDecoder(), ["stderr"] = Encoding.UTF8.GetDecoder() };
        try
        {
            while (true)
            {
                var (chunks, firstKept, completed, changed) = process.Output.ReadFrom(offset);
                if (offset < firstKept)
                {
                    await WriteEventAsync(http, "truncated", JsonSerializer.Serialize(new { from = offset, to = firstKept }), firstKept);
                    offset = firstKept;
                }

                foreach (var chunk in chunks)
                {
                    var bytes = chunk.After(offset).Span;
                    var characters = new char[Encoding.UTF8.GetMaxCharCount(bytes.Length)];
                    var count = decoders[chunk.Stream].GetChars(bytes, characters, flush: false);
                    await WriteEventAsync(http, chunk.Stream, JsonSerializer.Serialize(new string(characters, 0, count)), chunk.End);
                    offset = chunk.End;
                }

                if (completed && offset >= process.Output.End)
                {
                    await WriteEventAsync(http, "exit", JsonSerializer.Serialize(new { exitCode = process.ExitCode, durationMs = Math.Round(process.Duration.TotalMilliseconds, 1), timedOut = process.TimedOut }, PlatformJson.Options), offset);
                    return;
                }

                if (!follow && !completed)
                {
                    return;
                }

                if (chunks.Count == 0 && await Task.WhenAny(changed, Task.Delay(KeepAliveInterval, http.RequestAborted)) != changed)
                {
                    await http.Response.WriteAsync(": keep-alive\n\n", http.RequestAborted);
                    await http.Response.Body.FlushAsync(http.RequestAborted);
                }
            }
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            // The reader left; the process goes on (a background one) and its output stays for the next reader.
        }
    }

    private static async Task WriteEventAsync(HttpContext http, string name, string data, long id)
    {
        await http.Response.WriteAsync($"id: {id.ToString(CultureInfo.InvariantCulture)}\nevent: {name}\ndata: {data}\n\n", http.RequestAborted);
        await http.Response.Body.FlushAsync(http.RequestAborted);
    }

    private static (string Stdout, string Stderr, bool Truncated) Collect(GuestOutput output, int maxPerStream)
    {
        var (chunks, firstKept, _, _) = output.ReadFrom(0);
        var truncated = firstKept > 0;
        var streams = new Dictionary<string, MemoryStream> { ["stdout"] = new(), ["stderr"] = new() };
        foreach (var chunk in chunks)
        {
            var target = streams[chunk.Stream];
            var room = (int)Math.Max(0, maxPerStream - target.Length);
            target.Write(chunk.Data, 0, Math.Min(room, chunk.Data.Length));
            truncated |= room < chunk.Data.Length;
        }

        return (Encoding.UTF8.GetString(streams["stdout"].ToArray()), Encoding.UTF8.GetString(streams["stderr"].ToArray()), truncated);
    }

    private static bool WantsEvents(HttpContext http) =>
        http.Request.Headers.Accept.Any(a => a?.Contains("text/event-stream", StringComparison.OrdinalIgnoreCase) == true);

    private static GuestProcess FindProcess(GuestProcesses processes, Guid machineId, Guid processId) =>
        processes.Find(machineId, processId) ?? throw Problems.NotFound("process");

    /// <summary>Checks the request's grant, and that the machine runs here and can be entered.</summary>
    /// <summary><c>since</c>: an RFC 3339 time (<c>2026-12-07T14:00:00Z</c>) or a duration back from now (<c>90s</c>, <c>15m</c>, <c>2h</c>, <c>1d</c>).</summary>
    private static DateTimeOffset SinceOf(string since, DateTimeOffset now)
    {
        if (SinceDuration().Match(since) is { Success: true } duration)
        {
            var amount = long.Parse(duration.Groups[1].Value, CultureInfo.InvariantCulture);
            var unit = duration.Groups[2].Value switch { "s" => TimeSpan.FromSeconds(1), "m" => TimeSpan.FromMinutes(1), "h" => TimeSpan.FromHours(1), _ => TimeSpan.FromDays(1) };
            return amount <= 36_500 * TimeSpan.TicksPerDay / unit.Ticks ? now - amount * unit : DateTimeOffset.UnixEpoch;
        }

        return DateTimeOffset.TryParse(since, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at) && since.Contains('T', StringComparison.Ordinal)
            ? at
            : throw Problems.Invalid("since", "is an RFC 3339 time (2026-12-07T14:00:00Z) or a duration back from now: a number and s, m, h or d (90s, 15m, 2h, 1d)");
    }

    [GeneratedRegex("^([0-9]{1,9})([smhd])$")]
    private static partial Regex SinceDuration();

    private static async Task<(MachineGrant Grant, LaunchMachine Launch, IGuestAccess Access)> EnterAsync(HttpContext http, Guid machineId, bool write, GrantKeys keys, HostMachines machines, HostIdentity host)
    {
        var grant = await AuthorizeAsync(http, machineId, write, keys, host);
        var running = RunningOf(machineId, grant, machines) ?? throw NotRunning(machineId, host);
        if (running.Machine is not IGuestAccess access)
        {
            throw new ProblemException(ProblemTypes.ExecUnsupported, StatusCodes.Status409Conflict, "Nothing can run inside this machine.", $"A {running.Launch.Driver} machine offers no way in.");
        }

        return (grant, running.Launch, access);
    }

    /// <summary>The machine the grant is for, if it runs here for the grant's tenant.</summary>
    private static (LaunchMachine Launch, Drivers.IRunningMachine Machine)? RunningOf(Guid machineId, MachineGrant grant, HostMachines machines) =>
        machines.Find(machineId) is { } running && running.Launch.TenantId == grant.TenantId ? running : null;

    private static ProblemException NotRunning(Guid machineId, HostIdentity host) =>
        new(ProblemTypes.MachineNotRunning, StatusCodes.Status409Conflict, "The machine is not running.", $"Machine {machineId} does not run on host {host.Name} now: start it first.");

    private static void RequireWebSocket(HttpContext http, string title, string otherwise)
    {
        if (!http.WebSockets.IsWebSocketRequest)
        {
            throw new ProblemException(ProblemTypes.MalformedRequest, StatusCodes.Status400BadRequest, title, $"Ask with Upgrade: websocket; {otherwise}.");
        }
    }

    private static async Task<MachineGrant> AuthorizeAsync(HttpContext http, Guid machineId, bool write, GrantKeys keys, HostIdentity host)
    {
        var token = http.Request.Headers[MachineGrants.Header].ToString();
        var grant = token.Length == 0 ? null : await MachineGrants.ValidateAsync(token, keys.Current(), host.HostId, DateTimeOffset.UtcNow);
        if (grant is null || grant.MachineId != machineId)
        {
            throw Problems.Unauthorized("The request carries no current grant for this machine on this host.");
        }

        if (write && !grant.AllowsWrite)
        {
            throw Problems.Forbidden("The grant lets its holder read inside the machine, not change it.");
        }

        return grant;
    }

    private static string PathInMachine(string? path)
    {
        var full = "/" + (path ?? "").TrimStart('/');
        if (full.Contains('\0') || full.Length > 4096)
        {
            throw Problems.Invalid("path", "must be a path of at most 4096 characters, without NUL");
        }

        return full.Length > 1 ? full.TrimEnd('/') : full;
    }

    private static long UploadSize(HttpContext http, GuestOptions options)
    {
        if (http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
        {
            bodySize.MaxRequestBodySize = options.MaxUploadBytes;
        }

        if (http.Request.ContentLength is not { } size)
        {
            throw new ProblemException(ProblemTypes.LengthRequired, StatusCodes.Status411LengthRequired, "Content-Length is required.", "Send the upload's length in Content-Length (not chunked).");
        }

        if (size > options.MaxUploadBytes)
        {
            throw new ProblemException(ProblemTypes.PayloadTooLarge, StatusCodes.Status413PayloadTooLarge, "The upload is too large.",
                $"{size} bytes is more than the {options.MaxUploadBytes} bytes ({options.MaxUploadBytes / (1024 * 1024)} MiB) one request may upload.",
                new Dictionary<string, object?> { ["limitBytes"] = options.MaxUploadBytes });
        }

        return size;
    }

    private static async Task<T> ReadJsonAsync<T>(HttpContext http)
    {
        try
        {
            return await JsonSerializer.DeserializeAsync<T>(http.Request.Body, PlatformJson.Options, http.RequestAborted)
                ?? throw Problems.Invalid("body", "must be a JSON object");
        }
        catch (JsonException malformed)
        {
            throw new ProblemException(ProblemTypes.MalformedRequest, StatusCodes.Status400BadRequest, "The body is not valid JSON for this request.", malformed.Message);
        }
    }

    [GeneratedRegex("^0?[0-7]{3}$")]
    private static partial Regex FileMode();
}

/// <summary>A plain exec's answer: the command's exit code and output (each stream cut at the agent's limit, <see cref="Truncated"/> then).</summary>
public sealed record ExecResult(int ExitCode, string Stdout, string Stderr, double DurationMs, bool Truncated, bool TimedOut, Guid ProcessId);

public sealed record SignalRequest(JsonElement Signal);

/// <summary>A control message of an attached WebSocket client.</summary>
public sealed record AttachControl(string? Type, int? Columns = null, int? Rows = null, JsonElement? Signal = null);

/// <summary>Signal names and numbers (x86-64 Linux).</summary>
public static class Signals
{
    private static readonly Dictionary<string, int> Numbers = new(StringComparer.OrdinalIgnoreCase)
    {
        ["HUP"] = 1, ["INT"] = 2, ["QUIT"] = 3, ["KILL"] = 9, ["USR1"] = 10, ["USR2"] = 12, ["TERM"] = 15, ["CONT"] = 18, ["STOP"] = 19, ["WINCH"] = 28,
    };

    public static IEnumerable<string> Names => Numbers.Keys;

    public static int? Number(JsonElement signal) => signal.ValueKind switch
    {
        JsonValueKind.Number when signal.TryGetInt32(out var number) && number is >= 1 and <= 64 => number,
        JsonValueKind.String when signal.GetString() is { } name && Numbers.TryGetValue(name.StartsWith("SIG", StringComparison.OrdinalIgnoreCase) ? name[3..] : name, out var number) => number,
        _ => null,
    };
}
