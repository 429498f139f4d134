using Amazon.Runtime;
using Amazon.Runtime.CredentialManagement;

namespace Platform.Provisioning.Drivers.Cloud.Aws;

/// <summary>
/// Where the AWS driver's credentials come from, in the order the AWS tools look: the standard environment
/// variables (<c>AWS_ACCESS_KEY_ID</c>, <c>AWS_SECRET_ACCESS_KEY</c>, <c>AWS_SESSION_TOKEN</c>), then a profile of
/// the shared files (<c>~/.aws/credentials</c>, <c>~/.aws/config</c>, or <c>AWS_SHARED_CREDENTIALS_FILE</c>) named by
/// <c>AWS_PROFILE</c>, the configured profile, or <c>default</c>. The instance metadata service is not asked: an agent
/// that runs on EC2 gets its role's credentials through a profile with <c>credential_source = Ec2InstanceMetadata</c>.
/// </summary>
public static class AwsCredentialSource
{
    /// <summary>The credentials found, or null with <paramref name="missing"/> saying what to set.</summary>
    public static AWSCredentials? Find(string? profile, out string? missing)
    {
        missing = null;
        var accessKey = Environment.GetEnvironmentVariable("AWS_ACCESS_KEY_ID");
        var secretKey = Environment.GetEnvironmentVariable("AWS_SECRET_ACCESS_KEY");
        if (!string.IsNullOrEmpty(accessKey) && !string.IsNullOrEmpty(secretKey))
        {
            var token = Environment.GetEnvironmentVariable("AWS_SESSION_TOKEN");
            return string.IsNullOrEmpty(token) ? new BasicAWSCredentials(accessKey, secretKey) : new SessionAWSCredentials(accessKey, secretKey, token);
        }

        var name = Environment.GetEnvironmentVariable("AWS_PROFILE") is { Length: > 0 } fromEnvironment ? fromEnvironment : profile ?? "default";
        if (new CredentialProfileStoreChain().TryGetAWSCredentials(name, out var fromProfile))
        {
            return fromProfile;
        }

        missing = $"no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a shared profile ('{name}' is not in ~/.aws/credentials or ~/.aws/config)";
        return null;
    }
}
