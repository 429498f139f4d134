using System.CommandLine;
using System.Net.Http.Headers;
using System.Text.Json;

namespace Platform.Cli;

public sealed partial class Plat
{
    private static readonly string[] EventColumns = ["POSITION", "OCCURRED", "TYPE", "STREAM", "ACTOR"];

    /// <summary>How long plat waits before it reconnects to a live stream that dropped.</summary>
    private static readonly TimeSpan ReconnectDelay = TimeSpan.FromSeconds(1);

    private Command AuditCommand()
    {
        var types = new Option<string?>("--type") { Description = "Only these event types, comma-separated" };
        var stream = new Option<string?>("--stream") { Description = "Only this stream (machine-<id>, tenant-<id>, …)" };
        var actor = new Option<string?>("--actor") { Description = "Only what this actor caused (user:<id>, api-key:<id>, service:<name>)" };
        var from = new Option<string?>("--from") { Description = "Only events that occurred at or after this ISO 8601 time" };
        var until = new Option<string?>("--until") { Description = "Only events that occurred before this ISO 8601 time" };
        var after = new Option<long?>("--after") { Description = "The entries after this position (the newest ones when left out)" };
        var limit = new Option<int>("--limit") { Description = "At most this many entries", DefaultValueFactory = _ => 100 };
        var command = new Command("audit", "The audit log: every change, in one global order, oldest first; the newest entries unless --after says where to start") { types, stream, actor, from, until, after, limit };
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var query = new List<string>();
            AddQuery(query, "type", parsed.GetValue(types));
            AddQuery(query, "stream", parsed.GetValue(stream));
            AddQuery(query, "actor", parsed.GetValue(actor));
            AddQuery(query, "from", parsed.GetValue(from));
            AddQuery(query, "until", parsed.GetValue(until));
            var entries = parsed.GetValue(after) is { } position
                ? await AuditAsync(client, query, position, parsed.GetValue(limit), cancellationToken)
                : await NewestAsync(client, query, parsed.GetValue(limit), cancellationToken);
            await PrintEventsAsync(parsed, entries);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private Command EventsCommand()
    {
        var types = new Option<string?>("--type") { Description = "Only these event types, comma-separated" };
        var machine = new Option<string?>("--machine", "-m") { Description = "Only this machine's events (its id or name)" };
        var after = new Option<long?>("--after") { Description = "Start after this position (the newest 20 events when left out)" };
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing events as they happen, reconnecting where the stream left off" };
        var command = new Command("events", "The latest events; with --follow, the live stream (one line each, or one JSON object per line)") { types, machine, after, follow };
        command.SetAction(WithGateway(async (parsed, client, cancellationToken) =>
        {
            var live = new List<string>();
            AddQuery(live, "type", parsed.GetValue(types));
            var stream = parsed.GetValue(machine) is { } wanted ? $"machine-{await ResolveAsync(client, wanted, cancellationToken)}" : null;
            // The audit log takes the stream as a filter; the live stream does not, and is filtered here.
            var query = new List<string>(live);
            AddQuery(query, "stream", stream);

            var position = parsed.GetValue(after);
            var recent = position is { } start
                ? await AuditAsync(client, query, start, int.MaxValue, cancellationToken)
                : await NewestAsync(client, query, 20, cancellationToken);
            await PrintEventsAsync(parsed, recent, lines: true);
            if (!parsed.GetValue(follow))
            {
                return ExitCodes.Ok;
            }

            // From the last event shown; with none shown, from what is newest now (not the beginning of the log).
            if (recent.Count > 0)
            {
                position = recent[^1].GetProperty("position").GetInt64();
            }
            else if (position is null)
            {
                var head = await NewestAsync(client, [], 1, cancellationToken);
                position = head.Count > 0 ? head[0].GetProperty("position").GetInt64() : 0;
            }

            while (!cancellationToken.IsCancellationRequested)
            {
                try
                {
                    position = await FollowAsync(parsed, client, live, stream, position!.Value, cancellationToken);
                }
                catch (Exception dropped) when (dropped is HttpRequestException or IOException && !cancellationToken.IsCancellationRequested)
                {
                    // The stream dropped: it is resumed from the last position printed, so nothing is missed or repeated.
                }

                await Task.Delay(ReconnectDelay, cancellationToken);
            }

            return ExitCodes.Interrupted;
        }));
        return command;
    }

    /// <summary>The live stream from after <paramref name="position"/>, printed as it comes; answers the last position printed when it ends.</summary>
    private async Task<long> FollowAsync(ParseResult parsed, GatewayClient client, List<string> live, string? stream, long position, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"api/v1/events{(live.Count > 0 ? "?" + string.Join('&', live) : "")}");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        request.Headers.Add("Last-Event-ID", position.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        await foreach (var (_, data) in EventsAsync(await response.Content.ReadAsStreamAsync(cancellationToken), cancellationToken))
        {
            var entry = JsonDocument.Parse(data).RootElement;
            position = entry.GetProperty("position").GetInt64();
            if (stream is null || Text(entry, "streamId") == stream)
            {
                await PrintEventsAsync(parsed, [entry], lines: true);
                await output.FlushAsync(cancellationToken);
            }
        }

        return position;
    }

    /// <summary>Audit entries after <paramref name="after"/>, page after page, up to <paramref name="limit"/>.</summary>
    private static async Task<IReadOnlyList<JsonElement>> AuditAsync(GatewayClient client, List<string> query, long? after, int limit, CancellationToken cancellationToken)
    {
        var entries = new List<JsonElement>();
        var cursor = after?.ToString(System.Globalization.CultureInfo.InvariantCulture);
        while (entries.Count < limit)
        {
            var page = await client.GetAsync($"api/v1/audit?{string.Join('&', query.Append($"limit={Math.Min(1000, limit - entries.Count)}").Append(cursor is null ? "" : "after=" + cursor).Where(q => q.Length > 0))}", cancellationToken);
            var items = page.GetProperty("items").EnumerateArray().ToList();
            entries.AddRange(items);
            cursor = page.TryGetProperty("nextCursor", out var next) && next.ValueKind == JsonValueKind.String ? next.GetString() : null;
            if (cursor is null || items.Count == 0)
            {
                break;
            }
        }

        return entries;
    }

    /// <summary>The last <paramref name="count"/> entries that match, oldest first.</summary>
    private static async Task<IReadOnlyList<JsonElement>> NewestAsync(GatewayClient client, List<string> query, int count, CancellationToken cancellationToken) =>
        (await client.GetAsync($"api/v1/audit?{string.Join('&', query.Append($"limit={Math.Clamp(count, 1, 1000)}").Append("newest=true"))}", cancellationToken))
            .GetProperty("items").EnumerateArray().ToList();

    /// <summary>A table, or JSON: an array, or with <paramref name="lines"/> one object per line (for a stream).</summary>
    private async Task PrintEventsAsync(ParseResult parsed, IReadOnlyList<JsonElement> entries, bool lines = false)
    {
        if (Json(parsed))
        {
            if (lines)
            {
                foreach (var entry in entries)
                {
                    await output.WriteLineAsync(JsonSerializer.Serialize(entry));
                }
            }
            else
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(entries, Indented));
            }

            return;
        }

        var rows = entries.Select(e => (IReadOnlyList<string>)[Text(e, "position"), Text(e, "occurredAt"), Text(e, "type"), Text(e, "streamId"), Text(e, "actor")]);
        if (lines)
        {
            foreach (var row in rows)
            {
                await output.WriteLineAsync(string.Join("  ", row));
            }
        }
        else
        {
            await PrintTableAsync(EventColumns, rows);
        }
    }

    private static void AddQuery(List<string> query, string name, string? value)
    {
        if (value is { Length: > 0 })
        {
            query.Add($"{name}={Uri.EscapeDataString(value)}");
        }
    }
}

