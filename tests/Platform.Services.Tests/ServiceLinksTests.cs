using System.Text.Json;
using Platform.Testing;

namespace Platform.Services.Tests;

/// <summary>
/// What each service links, read from the dependency manifest of the build the tests run: the public entry point
/// carries no database or broker client, and the host agent, which keeps no database, carries no event store.
/// </summary>
public sealed class ServiceLinksTests
{
    [Fact]
    public void The_gateway_links_neither_the_event_store_nor_the_bus()
    {
        var libraries = LibrariesOf("gateway", "Platform.Gateway");

        Assert.Contains("Platform.Hosting", libraries);
        Assert.Contains("Yarp.ReverseProxy", libraries);
        Assert.DoesNotContain(libraries, library => library is "Npgsql" or "Marten" or "Platform.EventSourcing" or "MassTransit" or "RabbitMQ.Client" or "Platform.Messaging");
    }

    [Fact]
    public void The_host_agent_links_the_bus_but_not_the_event_store()
    {
        var libraries = LibrariesOf("provisioning", "Platform.HostAgent");

        Assert.Contains("MassTransit.RabbitMQ", libraries);
        Assert.DoesNotContain(libraries, library => library is "Npgsql" or "Marten" or "Platform.EventSourcing" or "Platform.Messaging.EventStore");
    }

    [Fact]
    public void A_service_with_streams_links_the_event_store_and_the_bus()
    {
        var libraries = LibrariesOf("tenancy", "Platform.Tenancy");

        Assert.Contains("Marten", libraries);
        Assert.Contains("Platform.Messaging.EventStore", libraries);
        Assert.Contains("MassTransit.RabbitMQ", libraries);
    }

    /// <summary>The names (without versions) of every library in the service's <c>.deps.json</c>.</summary>
    private static HashSet<string> LibrariesOf(string folder, string project)
    {
        var manifest = Path.Combine(RepositoryRoot.Path, "services", folder, project, "bin", RepositoryRoot.Configuration, "net10.0", project + ".deps.json");
        using var document = JsonDocument.Parse(File.ReadAllText(manifest));
        return document.RootElement.GetProperty("libraries").EnumerateObject().Select(library => library.Name.Split('/')[0]).ToHashSet(StringComparer.Ordinal);
    }
}
