using Microsoft.IdentityModel.Tokens;
using Platform.Contracts.Provisioning;
using Platform.Hosting.Security;

namespace Platform.Provisioning.Machines.Guests;

/// <summary>
/// This provisioning instance's grant key: made at start, never stored or sent anywhere but its public half, which
/// every host agent is told to trust (<see cref="TrustMachineGrantKey"/>) for <see cref="TrustPeriod"/> at a time.
/// </summary>
public sealed class MachineGrantSigner(TimeProvider time)
{
    public static readonly TimeSpan TrustPeriod = TimeSpan.FromHours(1);

    private readonly ECDsaSecurityKey _key = MachineGrants.NewKey();

    public string Issue(MachineGrant grant) => MachineGrants.Issue(_key, grant, time.GetUtcNow());

    public TrustMachineGrantKey TrustFor(Guid hostId) => new(hostId, _key.KeyId, MachineGrants.PublicKeyOf(_key), time.GetUtcNow() + TrustPeriod);
}
