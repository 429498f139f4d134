using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace Platform.Cli;

/// <summary>A refusal of the API, as its problem details say it (RFC 7807): what plat prints and exits with.</summary>
public sealed class ProblemException(HttpStatusCode status, string? type, string title, string? detail, string? traceId, JsonElement? errors)
    : Exception(title)
{
    public HttpStatusCode Status { get; } = status;

    public string? Type { get; } = type;

    public string Title { get; } = title;

    public string? Detail { get; } = detail;

    public string? TraceId { get; } = traceId;

    /// <summary>A validation problem's fields and what is wrong with each.</summary>
    public JsonElement? Errors { get; } = errors;
}

/// <summary>The gateway's public API, with the logged-in credential.</summary>
public sealed class GatewayClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly HttpMessageHandler? _handler;

    public GatewayClient(string url, CliSettings settings, HttpMessageHandler? handler = null)
    {
        _handler = handler;
        _http = handler is null ? new HttpClient() : new HttpClient(handler, disposeHandler: false);
        _http.BaseAddress = new Uri(url.TrimEnd('/') + "/");
        _http.Timeout = Timeout.InfiniteTimeSpan;
        if (settings.ApiKey is { } key)
        {
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("ApiKey", key);
        }
        else if (settings.Token is { } token)
        {
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("plat", typeof(GatewayClient).Assembly.GetName().Version?.ToString(3) ?? "0"));
    }

    public Task<JsonElement> GetAsync(string path, CancellationToken cancellationToken) => SendAsync(HttpMethod.Get, path, null, cancellationToken);

    public Task<JsonElement> PostAsync(string path, object? body, CancellationToken cancellationToken) => SendAsync(HttpMethod.Post, path, body, cancellationToken);

    public Task<JsonElement> DeleteAsync(string path, CancellationToken cancellationToken) => SendAsync(HttpMethod.Delete, path, null, cancellationToken);

    /// <summary>Sends a request and answers its JSON body (an empty object for none); a refusal throws its problem.</summary>
    public async Task<JsonElement> SendAsync(HttpMethod method, string path, object? body, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, path.TrimStart('/'));
        if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }

        using var response = await SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken);
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        return text.Length == 0 ? JsonDocument.Parse("{}").RootElement : JsonDocument.Parse(text).RootElement;
    }

    /// <summary>Sends a request and answers the response once its headers are in, for streaming; a refusal throws its problem.</summary>
    public async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, HttpCompletionOption completion, CancellationToken cancellationToken)
    {
        var response = await _http.SendAsync(request, completion, cancellationToken);
        if (response.IsSuccessStatusCode)
        {
            return response;
        }

        using (response)
        {
            throw await ProblemOfAsync(response, cancellationToken);
        }
    }

    /// <summary>A WebSocket to <paramref name="path"/> (ws:// or wss:// as the gateway's address says), with the credential.</summary>
    public async Task<System.Net.WebSockets.ClientWebSocket> ConnectWebSocketAsync(string path, CancellationToken cancellationToken)
    {
        var address = new UriBuilder(new Uri(_http.BaseAddress!, path)) { Scheme = _http.BaseAddress!.Scheme == "https" ? "wss" : "ws" }.Uri;
        var socket = new System.Net.WebSockets.ClientWebSocket();
        if (_http.DefaultRequestHeaders.Authorization is { } authorization)
        {
            socket.Options.SetRequestHeader("Authorization", authorization.ToString());
        }

        try
        {
            await socket.ConnectAsync(address, _handler is null ? null : new HttpMessageInvoker(_handler, disposeHandler: false), cancellationToken);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public void Dispose() => _http.Dispose();

    private static async Task<ProblemException> ProblemOfAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        try
        {
            var problem = JsonDocument.Parse(text).RootElement;
            return new ProblemException(response.StatusCode, Text(problem, "type"), Text(problem, "title") ?? response.ReasonPhrase ?? "The request was refused.",
                Text(problem, "detail"), Text(problem, "traceId"), problem.TryGetProperty("errors", out var errors) ? errors.Clone() : null);
        }
        catch (JsonException)
        {
            return new ProblemException(response.StatusCode, null, $"{(int)response.StatusCode} {response.ReasonPhrase}", text.Length > 0 ? text.Trim() : null, null, null);
        }

        static string? Text(JsonElement element, string name) =>
            element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
    }
}
