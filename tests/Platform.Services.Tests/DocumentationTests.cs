using System.Net.Http.Json;
using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;
using Platform.Hosting.Problems;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>The examples in docs/ are what the running services really answer.</summary>
public sealed class DocumentationTests
{
    [Fact]
    public void The_problem_catalogue_lists_every_problem_type_the_code_can_answer()
    {
        var catalogue = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "docs", "api", "problems.md"));
        var types = typeof(ProblemTypes).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(field => field.IsLiteral && field.Name != nameof(ProblemTypes.Prefix))
            .Select(field => (string)field.GetRawConstantValue()!);

        Assert.All(types, type => Assert.Contains($"`{type}`", catalogue, StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_documented_info_health_and_problem_examples_have_the_shape_the_service_answers()
    {
        await using var environment = await ServiceEnvironment.CreateAsync();
        await using var service = ServiceProcess.Start("provisioning", environment.For());
        await service.WaitUntilReadyAsync();
        using var client = await service.CreateGatewayLikeClientAsync();

        AssertSameShape(Example("operations.md", "info"), await client.GetFromJsonAsync<JsonElement>("/api/v1/provisioning/info"));
        AssertSameShape(Example("operations.md", "health-ready"), await client.GetFromJsonAsync<JsonElement>("/health/ready"));
        AssertSameShape(Example(Path.Combine("api", "problems.md"), "problem"), await (await client.GetAsync("/api/v1/provisioning/nothing")).Content.ReadFromJsonAsync<JsonElement>());
    }

    internal static JsonElement Example(string document, string name)
    {
        var text = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "docs", document));
        var match = Regex.Match(text, $"<!-- example: {Regex.Escape(name)} -->\\s*```json\\n(.*?)```", RegexOptions.Singleline);
        Assert.True(match.Success, $"docs/{document} has no '{name}' example");
        return JsonDocument.Parse(match.Groups[1].Value).RootElement.Clone();
    }

    /// <summary>Same property names at every level and the same kinds of values; the values themselves differ by run.</summary>
    internal static void AssertSameShape(JsonElement documented, JsonElement actual, string path = "$")
    {
        Assert.True(Kind(documented) == Kind(actual), $"{path}: documented as {documented.ValueKind}, answered as {actual.ValueKind}");
        if (documented.ValueKind != JsonValueKind.Object)
        {
            return;
        }

        var documentedNames = documented.EnumerateObject().Select(p => p.Name).Order().ToArray();
        var actualNames = actual.EnumerateObject().Select(p => p.Name).Order().ToArray();
        Assert.True(documentedNames.SequenceEqual(actualNames), $"{path}: documented [{string.Join(", ", documentedNames)}], answered [{string.Join(", ", actualNames)}]");
        foreach (var property in documented.EnumerateObject())
        {
            AssertSameShape(property.Value, actual.GetProperty(property.Name), $"{path}.{property.Name}");
        }
    }

    private static JsonValueKind Kind(JsonElement element) =>
        element.ValueKind is JsonValueKind.True or JsonValueKind.False ? JsonValueKind.True : element.ValueKind;
}
