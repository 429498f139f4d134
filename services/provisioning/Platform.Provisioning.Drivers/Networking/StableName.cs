using System.Security.Cryptography;
using System.Text;

namespace Platform.Provisioning.Drivers.Networking;

/// <summary>
/// Names of host objects derived from the id of what they serve, so that a reconciler holding only ids can tell
/// ours from leftovers. Interface names are at most 15 characters, so the id is hashed rather than spelt out.
/// </summary>
internal static class StableName
{
    public static string For(string prefix, string id, int hexDigits) =>
        prefix + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(id)))[..hexDigits];
}
