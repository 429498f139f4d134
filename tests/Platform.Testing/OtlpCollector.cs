using System.Collections.Concurrent;
using System.Text;
using Microsoft.AspNetCore.Http;
using Platform.Testing.Clouds;

namespace Platform.Testing;

/// <summary>
/// An OTLP/HTTP collector on loopback that keeps the spans it is sent. It takes what OpenTelemetry's exporters send
/// with <c>OTLP/HTTP protobuf</c>: <c>POST /v1/traces</c> with an <c>ExportTraceServiceRequest</c> (opentelemetry-proto
/// trace/v1: resource_spans = 1; ResourceSpans: resource = 1, scope_spans = 2; ScopeSpans: spans = 2; Span: trace_id = 1,
/// span_id = 2, parent_span_id = 4, name = 5, kind = 6; Resource: attributes = 1 of KeyValue key = 1, value = 2 with
/// AnyValue string_value = 1), answered 200 with an empty <c>ExportTraceServiceResponse</c>. Metrics are accepted and dropped.
/// </summary>
public sealed class OtlpCollector : IAsyncDisposable
{
    private readonly ConcurrentQueue<CollectedSpan> _spans = new();
    private LoopbackServer? _server;
    private int _metricExports;

    public Uri Endpoint => _server!.Address;

    public IReadOnlyList<CollectedSpan> Spans => _spans.ToArray();

    /// <summary>How many metric exports arrived (<c>POST /v1/metrics</c>).</summary>
    public int MetricExports => _metricExports;

    public static async Task<OtlpCollector> StartAsync()
    {
        var collector = new OtlpCollector();
        collector._server = await LoopbackServer.StartAsync(collector.HandleAsync);
        return collector;
    }

    private async Task HandleAsync(HttpContext context)
    {
        using var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body);
        if (context.Request.Method != "POST" || context.Request.ContentType != "application/x-protobuf")
        {
            context.Response.StatusCode = 415;
            return;
        }

        if (context.Request.Path == "/v1/traces")
        {
            foreach (var span in Decode(body.ToArray()))
            {
                _spans.Enqueue(span);
            }
        }
        else if (context.Request.Path == "/v1/metrics")
        {
            Interlocked.Increment(ref _metricExports);
        }

        context.Response.StatusCode = 200;
        context.Response.ContentType = "application/x-protobuf";
    }

    private static IEnumerable<CollectedSpan> Decode(byte[] request)
    {
        foreach (var resourceSpans in Fields(request).Where(f => f.Number == 1).Select(f => f.Bytes))
        {
            var service = Fields(resourceSpans).Where(f => f.Number == 1)
                .SelectMany(resource => Fields(resource.Bytes).Where(a => a.Number == 1))
                .Select(attribute => Fields(attribute.Bytes).ToList())
                .Where(kv => kv.Any(f => f.Number == 1 && Encoding.UTF8.GetString(f.Bytes) == "service.name"))
                .Select(kv => kv.Where(f => f.Number == 2).SelectMany(v => Fields(v.Bytes)).Where(v => v.Number == 1).Select(v => Encoding.UTF8.GetString(v.Bytes)).FirstOrDefault())
                .FirstOrDefault() ?? "";
            foreach (var scopeSpans in Fields(resourceSpans).Where(f => f.Number == 2).Select(f => f.Bytes))
            {
                foreach (var span in Fields(scopeSpans).Where(f => f.Number == 2).Select(f => Fields(f.Bytes).ToList()))
                {
                    string Hex(int number) => Convert.ToHexStringLower(span.FirstOrDefault(f => f.Number == number).Bytes ?? []);
                    yield return new CollectedSpan(service, Hex(1), Hex(2), Hex(4),
                        Encoding.UTF8.GetString(span.FirstOrDefault(f => f.Number == 5).Bytes ?? []),
                        (int)(span.FirstOrDefault(f => f.Number == 6).Value));
                }
            }
        }
    }

    /// <summary>The fields of one protobuf message (wire types 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).</summary>
    private static IEnumerable<(int Number, byte[] Bytes, ulong Value)> Fields(byte[] message)
    {
        var fields = new List<(int, byte[], ulong)>();
        var at = 0;
        while (at < message.Length)
        {
            var key = Varint(message, ref at);
            var (number, wireType) = ((int)(key >> 3), (int)(key & 7));
            switch (wireType)
            {
                case 0:
                    fields.Add((number, [], Varint(message, ref at)));
                    break;
                case 1:
                    fields.Add((number, message[at..(at + 8)], BitConverter.ToUInt64(message, at)));
                    at += 8;
                    break;
                case 2:
                    var length = (int)Varint(message, ref at);
                    fields.Add((number, message[at..(at + length)], 0));
                    at += length;
                    break;
                case 5:
                    fields.Add((number, message[at..(at + 4)], BitConverter.ToUInt32(message, at)));
                    at += 4;
                    break;
                default:
                    throw new InvalidDataException($"protobuf wire type {wireType} is not one OTLP uses");
            }
        }

        return fields;
    }

    private static ulong Varint(byte[] message, ref int at)
    {
        ulong value = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = message[at++];
            value |= (ulong)(b & 0x7f) << shift;
            if ((b & 0x80) == 0)
            {
                return value;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

/// <summary>One span as the collector received it: the service that sent it, its ids in hex (no parent: ""), name and kind (1 internal, 2 server, 3 client, 4 producer, 5 consumer).</summary>
public sealed record CollectedSpan(string Service, string TraceId, string SpanId, string ParentSpanId, string Name, int Kind);
