using System.Text.Json;
using System.Text.Json.Serialization;

namespace Platform.Provisioning.Drivers.Cloud.Gcp;

/// <summary>A Google service account's JSON key file, the fields the JWT-bearer flow needs. Its private key never leaves this type and the token source.</summary>
public sealed record ServiceAccountKey(
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("project_id")] string? ProjectId,
    [property: JsonPropertyName("private_key_id")] string PrivateKeyId,
    [property: JsonPropertyName("private_key")] string PrivateKey,
    [property: JsonPropertyName("client_email")] string ClientEmail,
    [property: JsonPropertyName("token_uri")] string? TokenUri)
{
    /// <summary>The key in <paramref name="path"/>, or null with <paramref name="problem"/> saying what is wrong (never quoting the file).</summary>
    public static ServiceAccountKey? Load(string? path, out string? problem)
    {
        problem = null;
        if (string.IsNullOrEmpty(path))
        {
            problem = "no GCP credentials: set Platform:Agent:Gcp:CredentialsFile or GOOGLE_APPLICATION_CREDENTIALS to a service account's JSON key";
            return null;
        }

        if (!File.Exists(path))
        {
            problem = $"no GCP service account key at {path}";
            return null;
        }

        try
        {
            var key = JsonSerializer.Deserialize<ServiceAccountKey>(File.ReadAllText(path));
            if (key is { Type: "service_account", PrivateKey.Length: > 0, ClientEmail.Length: > 0, PrivateKeyId.Length: > 0 })
            {
                return key;
            }
        }
        catch (JsonException)
        {
        }

        problem = $"{path} is not a service account's JSON key (type service_account, with private_key, private_key_id and client_email)";
        return null;
    }

    /// <summary>The key file's fields without the private key, so a stray log of the record leaks nothing.</summary>
    public override string ToString() => $"service account {ClientEmail} (key {PrivateKeyId})";
}
