using System.Security.Cryptography;
using System.Text;

namespace Platform.Telemetry.Webhooks;

/// <summary>
/// <c>X-Platform-Signature: sha256=&lt;hex of HMAC-SHA256(secret, timestamp + "." + body)&gt;</c>, with the
/// timestamp (Unix seconds) in <c>X-Platform-Timestamp</c>: a receiver recomputes it, compares in constant
/// time, and refuses old timestamps to stop replays (docs/api/webhooks.md).
/// </summary>
public static class WebhookSignature
{
    public const string EventIdHeader = "X-Platform-Event-Id";
    public const string TimestampHeader = "X-Platform-Timestamp";
    public const string SignatureHeader = "X-Platform-Signature";

    public static string Sign(string secret, string timestamp, byte[] body)
    {
        var signed = Encoding.UTF8.GetBytes(timestamp + ".").Concat(body).ToArray();
        return "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), signed));
    }
}
