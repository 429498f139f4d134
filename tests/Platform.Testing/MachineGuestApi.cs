using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Xunit;

namespace Platform.Testing;

/// <summary>One Server-Sent Event as the exec and output routes send them: its id (the output offset after it), its name and its data.</summary>
public sealed record ServerSentEvent(long Id, string Name, string Data)
{
    /// <summary>The text of a <c>stdout</c> or <c>stderr</c> event (its data is a JSON string); the data itself for the others.</summary>
    public string Text => Data.StartsWith('"') ? JsonSerializer.Deserialize<string>(Data) ?? "" : Data;
}

/// <summary>Exec, processes and files of a machine through the gateway, as the tests call them.</summary>
public static class MachineGuestApi
{
    /// <summary><c>POST …/exec</c> and its 200: the command's answer (<c>exitCode</c>, <c>stdout</c>, <c>stderr</c>, …).</summary>
    public static async Task<JsonElement> ExecAsync(this HttpClient client, Guid machineId, object request)
    {
        var response = await client.PostAsJsonAsync($"/api/v1/machines/{machineId}/exec", request);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"exec: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    /// <summary><c>POST …/exec</c> with <c>background: true</c>: the process id of its 202.</summary>
    public static async Task<Guid> StartInBackgroundAsync(this HttpClient client, Guid machineId, params string[] command)
    {
        var response = await client.PostAsJsonAsync($"/api/v1/machines/{machineId}/exec", new { command, background = true });
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"exec: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("processId").GetGuid();
    }

    /// <summary>Reads Server-Sent Events from a response until <paramref name="stopAfter"/> says so or the stream ends.</summary>
    public static async Task<IReadOnlyList<ServerSentEvent>> ReadEventsAsync(HttpResponseMessage response, Func<ServerSentEvent, bool>? stopAfter = null, CancellationToken cancellationToken = default)
    {
        if (!response.IsSuccessStatusCode)
        {
            // Read only when it failed: a stream of events does not end.
            Assert.Fail($"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken)}");
        }

        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(), Encoding.UTF8);
        var events = new List<ServerSentEvent>();
        var (id, name, data) = (0L, "message", new StringBuilder());
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.Length == 0)
            {
                if (data.Length > 0)
                {
                    var received = new ServerSentEvent(id, name, data.ToString());
                    events.Add(received);
                    if (stopAfter?.Invoke(received) == true)
                    {
                        break;
                    }
                }

                (name, data) = ("message", new StringBuilder());
            }
            else if (line.StartsWith("id: ", StringComparison.Ordinal))
            {
                id = long.Parse(line[4..], System.Globalization.CultureInfo.InvariantCulture);
            }
            else if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                name = line[7..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                data.Append(line[6..]);
            }
        }

        return events;
    }

    /// <summary>The output of a process as events, from <paramref name="offset"/>, following it until it ends or <paramref name="stopAfter"/> says so.</summary>
    public static async Task<IReadOnlyList<ServerSentEvent>> FollowOutputAsync(this HttpClient client, Guid machineId, Guid processId, long offset = 0, Func<ServerSentEvent, bool>? stopAfter = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/api/v1/machines/{machineId}/processes/{processId}/output?follow=true");
        request.Headers.Add("Last-Event-ID", offset.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, patience.Token);
        return await ReadEventsAsync(response, stopAfter, patience.Token);
    }
}
