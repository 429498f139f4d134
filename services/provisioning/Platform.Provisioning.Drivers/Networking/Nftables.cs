using System.Text.RegularExpressions;

namespace Platform.Provisioning.Drivers.Networking;

/// <summary>
/// nftables in one namespace (this process's own when none is named). Each object of ours owns a whole table, so
/// removing the object is deleting its table: nothing of it is left mixed into anyone else's rules.
/// </summary>
internal static partial class Nftables
{
    /// <summary>Applies a ruleset script atomically (nft -f reads it from standard input).</summary>
    public static Task ApplyAsync(string? networkNamespace, string script) =>
        HostTool.RunAsync([.. HostTool.In(networkNamespace), "nft", "-f", "-"], script);

    /// <summary>Deletes an IPv4 table; one that is gone already is fine.</summary>
    public static async Task DeleteTableAsync(string? networkNamespace, string table)
    {
        var result = await HostTool.TryRunAsync([.. HostTool.In(networkNamespace), "nft", "delete", "table", "ip", table]);
        if (result.ExitCode != 0 && (await ListTablesAsync(networkNamespace, table)).Contains(table))
        {
            throw new IOException($"nft delete table ip {table} failed: {result.Errors.Trim()}");
        }
    }

    /// <summary>The IPv4 tables whose names start with <paramref name="prefix"/>.</summary>
    public static async Task<IReadOnlyList<string>> ListTablesAsync(string? networkNamespace, string prefix)
    {
        var output = await HostTool.RunAsync([.. HostTool.In(networkNamespace), "nft", "list", "tables", "ip"]);
        return TableLine().Matches(output).Select(m => m.Groups[1].Value).Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).ToArray();
    }

    /// <summary>A table's comment, where an object keeps what a reconciler needs to find its other parts; null when the table is gone.</summary>
    public static async Task<string?> CommentAsync(string? networkNamespace, string table)
    {
        // nft 1.0's JSON output leaves table comments out; its text output has them.
        var result = await HostTool.TryRunAsync([.. HostTool.In(networkNamespace), "nft", "list", "table", "ip", table]);
        return result.ExitCode == 0 && CommentLine().Match(result.Output) is { Success: true } match ? match.Groups[1].Value : null;
    }

    [GeneratedRegex(@"^table ip (\S+)$", RegexOptions.Multiline)]
    private static partial Regex TableLine();

    [GeneratedRegex("^\\s*comment \"([^\"]*)\"", RegexOptions.Multiline)]
    private static partial Regex CommentLine();
}
