namespace Platform.Provisioning.Drivers.Container;

/// <summary>
/// One image the engine holds (a line of <c>GET /images/json</c>, or <c>GET /images/{reference}/json</c>):
/// <paramref name="Id"/> is <c>sha256:&lt;64 hex&gt;</c>; an untagged image has no repo tags (or <c>&lt;none&gt;:&lt;none&gt;</c>).
/// </summary>
public sealed record ImageSummary(string Id, IReadOnlyList<string>? RepoTags, long Size)
{
    public IReadOnlyList<string> Tags => RepoTags?.Where(t => t != "<none>:<none>").ToList() ?? [];
}
