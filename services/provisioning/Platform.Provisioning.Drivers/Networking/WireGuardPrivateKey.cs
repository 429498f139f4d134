using System.Security.Cryptography;

namespace Platform.Provisioning.Drivers.Networking;

/// <summary>
/// A WireGuard (Curve25519) private key. It leaves this process only on a tool's standard input: never on a
/// command line (every user can read /proc/*/cmdline), in a file, a log or an exception, and ToString hides it.
/// </summary>
public sealed class WireGuardPrivateKey : IDisposable
{
    private readonly byte[] _key;

    private WireGuardPrivateKey(byte[] key) => _key = key;

    public static WireGuardPrivateKey Generate()
    {
        var key = RandomNumberGenerator.GetBytes(32);

        // Curve25519 clamping, as wg genkey does: a multiple of the cofactor 8 with the top bit fixed.
        key[0] &= 248;
        key[31] &= 127;
        key[31] |= 64;
        return new WireGuardPrivateKey(key);
    }

    /// <summary>
    /// The public key to hand to the peer. .NET has no X25519, so wg derives it; the private key goes in on standard input.
    /// </summary>
    public async Task<string> PublicKeyAsync()
    {
        var secret = Reveal();
        return (await HostTool.RunAsync(["wg", "pubkey"], secret + "\n", secret)).Trim();
    }

    public override string ToString() => "(WireGuard private key)";

    public void Dispose() => CryptographicOperations.ZeroMemory(_key);

    internal string Reveal() => Convert.ToBase64String(_key);
}
