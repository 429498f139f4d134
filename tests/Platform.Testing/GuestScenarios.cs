using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Xunit;

namespace Platform.Testing;

/// <summary>What every kind of machine that can be entered must do through the gateway, asserted the same way for each kind.</summary>
public static class GuestScenarios
{
    /// <summary>
    /// <c>echo hello</c>, a command that reads its input and exits 4, and a background loop that is followed, signalled
    /// (it traps TERM and exits 3) and re-attached from where the first reader left, with no line lost.
    /// </summary>
    public static async Task CommandsInputSignalAndResumeAsync(HttpClient tenant, Guid id)
    {
        var hello = await tenant.ExecAsync(id, new { command = new[] { "echo", "hello" } });
        var input = await tenant.ExecAsync(id, new { command = new[] { "/bin/sh", "-c", "tr a-z A-Z; exit 4" }, stdin = "shout\n" });
        var processId = await tenant.StartInBackgroundAsync(id, "/bin/sh", "-c", "trap 'echo got TERM; exit 3' TERM; i=1; while true; do echo line $i; i=$((i + 1)); sleep 0.1; done");
        var first = await tenant.FollowOutputAsync(id, processId, stopAfter: e => e.Text.Contains("line 3", StringComparison.Ordinal));
        var signal = await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/processes/{processId}/signal", new { signal = "TERM" });
        var rest = await tenant.FollowOutputAsync(id, processId, offset: first[^1].Id);

        Assert.Equal((0, "hello\n"), (hello.GetProperty("exitCode").GetInt32(), hello.GetProperty("stdout").GetString()));
        Assert.Equal((4, "SHOUT\n"), (input.GetProperty("exitCode").GetInt32(), input.GetProperty("stdout").GetString()));
        Assert.Equal(HttpStatusCode.Accepted, signal.StatusCode);
        var lines = string.Concat(first.Concat(rest).Where(e => e.Name == "stdout").Select(e => e.Text)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("got TERM", lines[^1]);
        Assert.Equal(Enumerable.Range(1, lines.Length - 1).Select(i => $"line {i}"), lines[..^1]);
        Assert.Equal(3, JsonDocument.Parse(rest[^1].Data).RootElement.GetProperty("exitCode").GetInt32());
    }

    /// <summary>
    /// 50 MiB of random bytes into <paramref name="directory"/> (a path under the machine's root, no leading slash) and
    /// out again with the same SHA-256, the directory's listing, and the directory as a tar holding the file.
    /// </summary>
    public static async Task FileAndArchiveRoundTripAsync(HttpClient tenant, Guid id, string directory)
    {
        var content = new byte[50 * 1024 * 1024];
        Random.Shared.NextBytes(content);
        var sha256 = Convert.ToHexStringLower(SHA256.HashData(content));

        var put = await tenant.PutAsync($"/api/v1/machines/{id}/files/{directory}/blob.bin", new ByteArrayContent(content));
        var back = await tenant.GetByteArrayAsync($"/api/v1/machines/{id}/files/{directory}/blob.bin");
        var listing = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/files/{directory}");
        await using var tar = await tenant.GetStreamAsync($"/api/v1/machines/{id}/archive/{directory}");
        using var reader = new System.Formats.Tar.TarReader(tar);
        var entry = await reader.GetNextEntryAsync();
        while (entry is { EntryType: System.Formats.Tar.TarEntryType.Directory })
        {
            entry = await reader.GetNextEntryAsync();
        }

        Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        Assert.Equal(sha256, (await put.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("sha256").GetString());
        Assert.Equal(sha256, Convert.ToHexStringLower(SHA256.HashData(back)));
        Assert.Equal(["blob.bin"], listing.GetProperty("items").EnumerateArray().Select(e => e.GetProperty("name").GetString()));
        Assert.Equal("./blob.bin", entry!.Name);
        Assert.Equal(content.Length, entry.Length);
    }

    /// <summary>
    /// A shell on a terminal, started in the background and attached to over a WebSocket through the gateway: what is
    /// typed runs, the terminal has the size asked for and follows a resize, and the shell's exit ends the connection
    /// with its code.
    /// </summary>
    public static async Task TerminalOverWebSocketAsync(HttpClient tenant, Guid id)
    {
        var started = await tenant.PostAsJsonAsync($"/api/v1/machines/{id}/exec", new { command = new[] { "/bin/sh" }, tty = true, background = true, columns = 100, rows = 30 });
        Assert.Equal(HttpStatusCode.Accepted, started.StatusCode);
        var processId = (await started.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("processId").GetGuid();
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var socket = await ConnectAsync(tenant, $"/api/v1/machines/{id}/processes/{processId}/attach", patience.Token);
        var screen = new StringBuilder();

        await socket.SendAsync("stty size\n"u8.ToArray(), WebSocketMessageType.Binary, true, patience.Token);
        await ReadUntilAsync(socket, screen, s => s.Contains("30 100", StringComparison.Ordinal), patience.Token);
        await socket.SendAsync(JsonSerializer.SerializeToUtf8Bytes(new { type = "resize", columns = 120, rows = 40 }), WebSocketMessageType.Text, true, patience.Token);
        await socket.SendAsync("stty size\n"u8.ToArray(), WebSocketMessageType.Binary, true, patience.Token);
        await ReadUntilAsync(socket, screen, s => s.Contains("40 120", StringComparison.Ordinal), patience.Token);
        await socket.SendAsync("exit 5\n"u8.ToArray(), WebSocketMessageType.Binary, true, patience.Token);
        var exit = await ReadUntilAsync(socket, screen, _ => false, patience.Token);

        Assert.Equal(5, exit!.Value.GetProperty("exitCode").GetInt32());
        Assert.Equal(WebSocketCloseStatus.NormalClosure, socket.CloseStatus);
        var process = await tenant.GetFromJsonAsync<JsonElement>($"/api/v1/machines/{id}/processes/{processId}");
        Assert.True(process.GetProperty("tty").GetBoolean());
        Assert.Equal(5, process.GetProperty("exitCode").GetInt32());
    }

    /// <summary>A WebSocket to <paramref name="path"/> through the gateway, with the tenant's credentials.</summary>
    public static async Task<ClientWebSocket> ConnectAsync(HttpClient tenant, string path, CancellationToken cancellationToken)
    {
        var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("Authorization", tenant.DefaultRequestHeaders.Authorization!.ToString());
        try
        {
            await socket.ConnectAsync(new UriBuilder(new Uri(tenant.BaseAddress!, path)) { Scheme = "ws" }.Uri, cancellationToken);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Reads output into <paramref name="screen"/> until it satisfies <paramref name="done"/>; returns the exit message if that came first.</summary>
    public static async Task<JsonElement?> ReadUntilAsync(ClientWebSocket socket, StringBuilder screen, Func<string, bool> done, CancellationToken cancellationToken)
    {
        var buffer = new byte[16 * 1024];
        while (!done(screen.ToString()))
        {
            var received = await socket.ReceiveAsync(buffer, cancellationToken);
            switch (received.MessageType)
            {
                case WebSocketMessageType.Binary:
                    screen.Append(Encoding.UTF8.GetString(buffer, 0, received.Count));
                    break;
                case WebSocketMessageType.Text:
                    var message = JsonDocument.Parse(buffer.AsMemory(0, received.Count)).RootElement.Clone();
                    Assert.Equal("exit", message.GetProperty("type").GetString());
                    await socket.ReceiveAsync(buffer, cancellationToken);
                    return message;
                case WebSocketMessageType.Close:
                    throw new Xunit.Sdk.XunitException($"The connection closed; the terminal showed: {screen}");
            }
        }

        return null;
    }
}
