namespace Platform.Tenancy.Users;

/// <summary>What a password must be (docs/api/tenancy.md): long, varied, and not the username.</summary>
public static class PasswordPolicy
{
    public const int MinLength = 12;
    public const int MaxLength = 128;
    public const int MinDistinctCharacters = 6;

    public static IReadOnlyList<string> Check(string? password, string? username)
    {
        if (string.IsNullOrEmpty(password))
        {
            return ["is required"];
        }

        var problems = new List<string>();
        if (password.Length < MinLength)
        {
            problems.Add($"must be at least {MinLength} characters");
        }

        if (password.Length > MaxLength)
        {
            problems.Add($"must be at most {MaxLength} characters");
        }

        if (password.Distinct().Count() < MinDistinctCharacters)
        {
            problems.Add($"must use at least {MinDistinctCharacters} different characters");
        }

        if (username is { Length: > 0 } && password.Contains(username, StringComparison.OrdinalIgnoreCase))
        {
            problems.Add("must not contain the username");
        }

        return problems;
    }
}
