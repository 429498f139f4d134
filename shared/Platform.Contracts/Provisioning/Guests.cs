namespace Platform.Contracts.Provisioning;

/// <summary>
/// Command to a host agent: trust grants signed with this key (ES256; <paramref name="PublicKey"/> is its
/// SubjectPublicKeyInfo, base64) until <paramref name="TrustUntil"/>. Each provisioning instance signs with a key of its
/// own that never leaves its memory, and repeats this to every host while it runs.
/// </summary>
public sealed record TrustMachineGrantKey(Guid HostId, string KeyId, string PublicKey, DateTimeOffset TrustUntil);

/// <summary>An agent's report: a command run inside a machine (through exec) ended.</summary>
public sealed record GuestCommandEnded(
    Guid MachineId,
    Guid TenantId,
    Guid HostId,
    Guid ProcessId,
    IReadOnlyList<string> Argv,
    string? User,
    int ExitCode,
    double DurationMs,
    bool TimedOut,
    string Actor,
    DateTimeOffset EndedAt);

/// <summary>An agent's report: a file or directory inside a machine was written (<paramref name="Change"/> <c>written</c>, with its size and SHA-256) or deleted (<c>deleted</c>).</summary>
public sealed record GuestFileChanged(
    Guid MachineId,
    Guid TenantId,
    Guid HostId,
    Guid ChangeId,
    string Path,
    string Change,
    long? Size,
    string? Sha256,
    bool Recursive,
    string Actor,
    DateTimeOffset ChangedAt);

/// <summary>A command ran inside the machine through exec: what ran, as whom, how it ended and who ran it; never its output, input or environment values.</summary>
public sealed record MachineCommandRan(
    Guid MachineId,
    Guid TenantId,
    Guid ProcessId,
    IReadOnlyList<string> Argv,
    string? User,
    int ExitCode,
    double DurationMs,
    bool TimedOut,
    string Actor,
    DateTimeOffset EndedAt) : IIntegrationEvent;

/// <summary>A file was written inside the machine through the files API (or a directory's contents through the archive API, with no hash).</summary>
public sealed record MachineFileWritten(Guid MachineId, Guid TenantId, Guid ChangeId, string Path, long Size, string? Sha256, string Actor, DateTimeOffset WrittenAt) : IIntegrationEvent;

/// <summary>A file or directory was deleted inside the machine through the files API.</summary>
public sealed record MachineFileDeleted(Guid MachineId, Guid TenantId, Guid ChangeId, string Path, bool Recursive, string Actor, DateTimeOffset DeletedAt) : IIntegrationEvent;
