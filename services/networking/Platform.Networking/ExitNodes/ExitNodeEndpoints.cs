using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Networking;
using Platform.EventSourcing;
using Platform.Hosting;
using Platform.Hosting.Problems;
using Platform.Hosting.Security;
using Platform.Networking.Addressing;

namespace Platform.Networking.ExitNodes;

public sealed record RegisterExitNodeRequest(
    string? Name, string? Endpoint, string? PublicKey, List<string>? AllowedIps, string? Region, string? Locale, string? Timezone, List<string>? Dns, string? PeerCidr,
    string? ExitAddress);

/// <summary>What an exit node's operator may change while machines use it: the public address the world sees.</summary>
public sealed record UpdateExitNodeRequest(string? ExitAddress);

public sealed record ExitNodeView(
    Guid Id, string Name, string Endpoint, string PublicKey, IReadOnlyList<string> AllowedIps, string Region, string? Locale, string? Timezone,
    IReadOnlyList<string>? Dns, string PeerCidr, bool Shared, DateTimeOffset RegisteredAt, string? ExitAddress)
{
    public static ExitNodeView Of(ExitNodeRegistered node) => new(node.ExitNodeId, node.Name, node.Endpoint, node.PublicKey, node.AllowedIps, node.Region,
        node.Locale, node.Timezone, node.Dns, node.PeerRange, node.TenantId is null, node.RegisteredAt, node.ExitAddress);
}

/// <summary>
/// Exit nodes: a tenant registers its own; a platform-admin's are shared with every tenant. A tenant sees
/// its own and the shared ones and removes only its own.
/// </summary>
public static partial class ExitNodeEndpoints
{
    public static void MapExitNodes(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/v1/exit-nodes", RegisterAsync);
        app.MapGet("/api/v1/exit-nodes", ListAsync);
        app.MapGet("/api/v1/exit-nodes/{exitNodeId:guid}", async Task<Ok<ExitNodeView>> (Guid exitNodeId, Caller caller, NpgsqlDataSource dataSource, EventStore store, CancellationToken ct) =>
            TypedResults.Ok(ExitNodeView.Of(await FindAsync(exitNodeId, caller, dataSource, store, ct))));
        app.MapDelete("/api/v1/exit-nodes/{exitNodeId:guid}", RemoveAsync);
        app.MapPatch("/api/v1/exit-nodes/{exitNodeId:guid}", UpdateAsync);
    }

    private static async Task<Created<ExitNodeView>> RegisterAsync(
        RegisterExitNodeRequest? request, Caller caller, HttpContext http, EventStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        caller.RequireMutate("exit nodes");
        var errors = Check(request);
        if (errors.Count > 0)
        {
            throw Problems.Validation(errors);
        }

        var node = new ExitNodeRegistered(Guid.CreateVersion7(), caller.TenantId, request!.Name!, request.Endpoint!, request.PublicKey!, request.AllowedIps!,
            request.Region!, request.Locale, request.Timezone, request.Dns, time.GetUtcNow(),
            request.PeerCidr is null ? null : Ipv4Block.Parse(request.PeerCidr).ToString(), request.ExitAddress is null ? null : ParseAddress(request.ExitAddress)!.ToString());
        await store.AppendAsync($"exit-node-{node.ExitNodeId}", ExpectedVersion.NoStream, [node],
            new EventMetadata(RequestCorrelation.Of(http), TenantId: caller.TenantId?.ToString(), Actor: caller.Subject), cancellationToken);
        return TypedResults.Created($"/api/v1/exit-nodes/{node.ExitNodeId}", ExitNodeView.Of(node));
    }

    private static async Task<Ok<Page<ExitNodeView>>> ListAsync(Caller caller, NpgsqlDataSource dataSource, EventStore store, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT node FROM {store.Schema}.exit_nodes WHERE $1 OR tenant_id IS NULL OR tenant_id = $2 ORDER BY id");
        command.Parameters.AddWithValue(caller.SeesAllTenants);
        command.Parameters.AddWithValue(caller.TenantId ?? Guid.Empty);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var nodes = new List<ExitNodeView>();
        while (await reader.ReadAsync(cancellationToken))
        {
            nodes.Add(ExitNodeView.Of(JsonSerializer.Deserialize<ExitNodeRegistered>(reader.GetString(0), PlatformJson.Options)!));
        }

        return TypedResults.Ok(new Page<ExitNodeView>(nodes, null));
    }

    private static async Task<NoContent> RemoveAsync(Guid exitNodeId, Caller caller, HttpContext http, NpgsqlDataSource dataSource, EventStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        caller.RequireMutate("exit nodes");
        // The version first: the catalog is written with the stream, so a change in between makes the append refuse.
        var version = await VersionOfAsync(exitNodeId, store, cancellationToken);
        var node = await FindOwnAsync(exitNodeId, caller, dataSource, store, "removes", cancellationToken);
        await store.AppendAsync($"exit-node-{exitNodeId}", version,
            [new ExitNodeRemoved(exitNodeId, node.TenantId, time.GetUtcNow())],
            new EventMetadata(RequestCorrelation.Of(http), TenantId: node.TenantId?.ToString(), Actor: caller.Subject), cancellationToken);
        return TypedResults.NoContent();
    }

    /// <summary>
    /// Records the node's new public address (its operator's, or a script's on the node when a residential or mobile
    /// address rotates); the same address again changes nothing. The healing watchdog may recreate the machines behind it.
    /// </summary>
    private static async Task<Ok<ExitNodeView>> UpdateAsync(
        Guid exitNodeId, UpdateExitNodeRequest? request, Caller caller, HttpContext http, NpgsqlDataSource dataSource, EventStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        caller.RequireMutate("exit nodes");
        if (request?.ExitAddress is not { } text || ParseAddress(text) is not { } address)
        {
            throw Problems.Invalid("exitAddress", "is required: the IPv4 or IPv6 address the world sees traffic through the node come from");
        }

        var version = await VersionOfAsync(exitNodeId, store, cancellationToken);
        var node = await FindOwnAsync(exitNodeId, caller, dataSource, store, "changes", cancellationToken);
        var current = address.ToString();
        if (node.ExitAddress == current)
        {
            return TypedResults.Ok(ExitNodeView.Of(node));
        }

        try
        {
            await store.AppendAsync($"exit-node-{exitNodeId}", version,
                [new ExitNodeExitAddressChanged(exitNodeId, node.TenantId, node.ExitAddress, current, time.GetUtcNow())],
                new EventMetadata(RequestCorrelation.Of(http), TenantId: node.TenantId?.ToString(), Actor: caller.Subject), cancellationToken);
        }
        catch (WrongExpectedVersionException)
        {
            throw new ProblemException(ProblemTypes.ConcurrencyConflict, StatusCodes.Status409Conflict, "The exit node changed meanwhile.", "Read it again and retry.");
        }

        return TypedResults.Ok(ExitNodeView.Of(node with { ExitAddress = current }));
    }

    /// <summary>The node, when the caller may change it: a tenant its own, a platform-admin any.</summary>
    private static async Task<ExitNodeRegistered> FindOwnAsync(Guid exitNodeId, Caller caller, NpgsqlDataSource dataSource, EventStore store, string verb, CancellationToken cancellationToken)
    {
        var node = await FindAsync(exitNodeId, caller, dataSource, store, cancellationToken);
        return node.TenantId is null && !caller.SeesAllTenants
            ? throw Problems.Forbidden($"A shared exit node is the platform's; only a platform-admin {verb} it.")
            : node;
    }

    private static async Task<ExpectedVersion> VersionOfAsync(Guid exitNodeId, EventStore store, CancellationToken cancellationToken) =>
        ExpectedVersion.Exactly(await store.ReadStreamVersionAsync($"exit-node-{exitNodeId}", cancellationToken));

    private static async Task<ExitNodeRegistered> FindAsync(Guid exitNodeId, Caller caller, NpgsqlDataSource dataSource, EventStore store, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT node FROM {store.Schema}.exit_nodes WHERE id = $1 AND ($2 OR tenant_id IS NULL OR tenant_id = $3)");
        command.Parameters.AddWithValue(exitNodeId);
        command.Parameters.AddWithValue(caller.SeesAllTenants);
        command.Parameters.AddWithValue(caller.TenantId ?? Guid.Empty);
        return await command.ExecuteScalarAsync(cancellationToken) is string json
            ? JsonSerializer.Deserialize<ExitNodeRegistered>(json, PlatformJson.Options)!
            : throw Problems.NotFound("exit node");
    }

    private static Dictionary<string, string[]> Check(RegisterExitNodeRequest? request)
    {
        var errors = new Dictionary<string, string[]>();
        if (request?.Name is not { Length: > 0 and <= 63 })
        {
            errors["name"] = ["is required, 1 to 63 characters"];
        }

        if (request?.Endpoint is not { } endpoint || !IsEndpoint(endpoint))
        {
            errors["endpoint"] = ["is required: host:port, the host an IPv4 address, [IPv6] address or DNS name, the port 1 to 65535"];
        }

        if (!IsWireGuardKey(request?.PublicKey))
        {
            errors["publicKey"] = ["must be a WireGuard public key: 32 bytes in base64 (44 characters)"];
        }

        if (request?.AllowedIps is not { Count: > 0 and <= 32 } allowed || allowed.Any(a => a is null || !IPNetwork.TryParse(a, out _)))
        {
            errors["allowedIps"] = ["must hold 1 to 32 CIDR blocks, such as 0.0.0.0/0"];
        }

        if (request?.Region is not { Length: > 0 and <= 63 })
        {
            errors["region"] = ["is required, 1 to 63 characters"];
        }

        if (request?.Dns is { } dns && (dns.Count > 8 || dns.Any(d => d is null || !IPAddress.TryParse(d, out _))))
        {
            errors["dns"] = ["must hold at most 8 IP addresses"];
        }

        if (request?.PeerCidr is { } peers && (!Ipv4Block.TryParse(peers, out var range) || range.PrefixLength is < 8 or > 30))
        {
            errors["peerCidr"] = ["must be an IPv4 CIDR block of /8 to /30 (its network address, host bits zero), such as 100.64.0.0/16"];
        }

        if (request?.ExitAddress is { } exitAddress && ParseAddress(exitAddress) is null)
        {
            errors["exitAddress"] = ["must be an IPv4 or IPv6 address: the one the world sees traffic through the node come from"];
        }

        if (request?.Locale is { Length: > 35 } || request?.Timezone is { Length: > 64 })
        {
            errors[request.Locale is { Length: > 35 } ? "locale" : "timezone"] = ["is too long"];
        }

        return errors;
    }

    /// <summary>An IPv4 address in full dotted form (not the legacy <c>203.0.113</c> that the parser takes) or an IPv6 address.</summary>
    private static IPAddress? ParseAddress(string text) =>
        IPAddress.TryParse(text, out var address)
        && (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? text.Contains(':') : address.ToString() == text)
            ? address
            : null;

    private static bool IsWireGuardKey(string? key)
    {
        var bytes = new byte[33];
        return key is { Length: 44 } && Convert.TryFromBase64String(key, bytes, out var written) && written == 32;
    }

    private static bool IsEndpoint(string endpoint)
    {
        var colon = endpoint.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(endpoint[(colon + 1)..], out var port) || port is < 1 or > 65535)
        {
            return false;
        }

        var host = endpoint[..colon];
        return host.StartsWith('[') && host.EndsWith(']') ? IPAddress.TryParse(host[1..^1], out _) : IPAddress.TryParse(host, out _) || DnsName().IsMatch(host);
    }


    [GeneratedRegex("^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$", RegexOptions.IgnoreCase)]
    private static partial Regex DnsName();
}
