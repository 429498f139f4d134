namespace Platform.Hosting;

/// <summary>One page of a listing; pass <see cref="NextCursor"/> back as <c>cursor</c> for the next; the last page has none.</summary>
public sealed record Page<T>(IReadOnlyList<T> Items, string? NextCursor);

public static class Paging
{
    public const int DefaultLimit = 50;
    public const int MaxLimit = 500;

    /// <summary>Reads <c>limit</c> and <c>cursor</c> (the last id of the previous page), refusing nonsense with a validation problem.</summary>
    public static (int Limit, Guid After) Read(int? limit, string? cursor)
    {
        var errors = new Dictionary<string, string[]>();
        if (limit is < 1 or > MaxLimit)
        {
            errors["limit"] = [$"must be between 1 and {MaxLimit}"];
        }

        var after = Guid.Empty;
        if (cursor is { Length: > 0 } && !Guid.TryParse(cursor, out after))
        {
            errors["cursor"] = ["is not a cursor this API returned"];
        }

        if (errors.Count > 0)
        {
            throw Problems.Problems.Validation(errors);
        }

        return (limit ?? DefaultLimit, after);
    }

    public static Page<T> Of<T>(IReadOnlyList<T> rows, int limit, Func<T, Guid> id) =>
        rows.Count > limit
            ? new Page<T>(rows.Take(limit).ToArray(), id(rows[limit - 1]).ToString())
            : new Page<T>(rows, null);
}
