using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
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
}
