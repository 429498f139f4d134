using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.IdentityModel.Tokens;
using Platform.Contracts.Provisioning;
using Platform.Hosting.Security;

namespace Platform.HostAgent.Guests;

/// <summary>
/// The keys whose grants this agent accepts: the public halves provisioning's instances send (<see cref="TrustMachineGrantKey"/>),
/// each until its time runs out. They are kept in the state directory, so that a restarted agent answers at once.
/// </summary>
public sealed class GrantKeys
{
    private const string FileName = "grant-keys.json";
    private readonly ConcurrentDictionary<string, TrustMachineGrantKey> _trusted = new();
    private readonly ConcurrentDictionary<string, SecurityKey> _keys = new();
    private readonly string _file;
    private readonly TimeProvider _time;
    private readonly Lock _saving = new();

    public GrantKeys(AgentOptions options, TimeProvider time)
    {
        _file = Path.Combine(options.StatePath, FileName);
        _time = time;
        if (File.Exists(_file))
        {
            foreach (var key in JsonSerializer.Deserialize<List<TrustMachineGrantKey>>(File.ReadAllText(_file), Platform.Contracts.PlatformJson.Options) ?? [])
            {
                _trusted[key.KeyId] = key;
            }
        }
    }

    public void Trust(TrustMachineGrantKey key)
    {
        _keys[key.KeyId] = MachineGrants.VerificationKey(key.KeyId, key.PublicKey);
        var known = _trusted.TryGetValue(key.KeyId, out var before) && before.TrustUntil >= key.TrustUntil;
        _trusted[key.KeyId] = known ? before! : key;
        if (!known)
        {
            Save();
        }
    }

    /// <summary>The keys trusted now.</summary>
    public IReadOnlyList<SecurityKey> Current()
    {
        var now = _time.GetUtcNow();
        return _trusted.Values.Where(k => k.TrustUntil > now)
            .Select(k => _keys.GetOrAdd(k.KeyId, _ => MachineGrants.VerificationKey(k.KeyId, k.PublicKey))).ToList();
    }

    private void Save()
    {
        lock (_saving)
        {
            var now = _time.GetUtcNow();
            foreach (var expired in _trusted.Values.Where(k => k.TrustUntil <= now).ToList())
            {
                _trusted.TryRemove(expired.KeyId, out _);
            }

            Directory.CreateDirectory(Path.GetDirectoryName(_file)!);
            var temporary = _file + ".tmp";
            File.WriteAllText(temporary, JsonSerializer.Serialize(_trusted.Values.ToList(), Platform.Contracts.PlatformJson.Options));
            File.Move(temporary, _file, overwrite: true);
        }
    }
}
