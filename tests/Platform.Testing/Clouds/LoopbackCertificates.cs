using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Platform.Testing.Clouds;

/// <summary>
/// A private certificate authority made for one test and a server certificate it issued for 127.0.0.1, as Azure
/// Stack Hub runs Resource Manager under its own CA: clients that insist on https (Azure.Core's bearer-token
/// policy, MSAL) reach a loopback fake by trusting the authority's PEM file, never by turning validation off.
/// Nothing goes into a certificate store; disposing deletes the PEM file.
/// </summary>
public sealed class LoopbackCertificates : IDisposable
{
    private LoopbackCertificates(X509Certificate2 authority, X509Certificate2 server, string authorityFile) =>
        (Authority, Server, AuthorityFile) = (authority, server, authorityFile);

    /// <summary>The authority's certificate, without its key.</summary>
    public X509Certificate2 Authority { get; }

    /// <summary>The server's certificate with its private key, for Kestrel.</summary>
    public X509Certificate2 Server { get; }

    /// <summary>A temporary PEM file holding <see cref="Authority"/>: what a client is told to trust.</summary>
    public string AuthorityFile { get; }

    public static LoopbackCertificates Create()
    {
        var now = DateTimeOffset.UtcNow;
        using var authorityKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var authorityRequest = new CertificateRequest("CN=Platform test authority", authorityKey, HashAlgorithmName.SHA256);
        authorityRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        authorityRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        authorityRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(authorityRequest.PublicKey, false));
        using var authority = authorityRequest.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(1));

        using var serverKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var serverRequest = new CertificateRequest("CN=127.0.0.1", serverKey, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        serverRequest.CertificateExtensions.Add(names.Build());
        serverRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        serverRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        serverRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        serverRequest.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(authority, true, false));
        using var issued = serverRequest.Create(authority, now.AddMinutes(-5), now.AddDays(1), RandomNumberGenerator.GetBytes(16));
        using var withKey = issued.CopyWithPrivateKey(serverKey);
        // A certificate whose key lives only in memory works with SslStream on Linux, not everywhere: a PKCS#12 round trip makes it portable.
        var server = X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);

        var file = Path.Combine(Path.GetTempPath(), $"platform-test-ca-{Guid.NewGuid():N}.pem");
        File.WriteAllText(file, authority.ExportCertificatePem());
        return new LoopbackCertificates(X509CertificateLoader.LoadCertificate(authority.RawData), server, file);
    }

    public void Dispose()
    {
        File.Delete(AuthorityFile);
        Authority.Dispose();
        Server.Dispose();
    }
}
