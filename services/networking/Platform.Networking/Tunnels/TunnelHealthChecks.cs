using Npgsql;
using Platform.Contracts.Networking;
using Platform.EventSourcing;
using Platform.Networking.Addressing;

namespace Platform.Networking.Tunnels;

/// <summary>
/// How tunnels' handshakes are judged. WireGuard renews a handshake every two minutes while traffic flows (the agent's
/// tunnels send a keepalive every 25 s, so some always does), and gives a session up after three: a handshake older than
/// <see cref="StaleAfter"/> means the exit node no longer answers.
/// </summary>
public sealed class TunnelHealthOptions
{
    /// <summary>How long a newly attached (or re-attached) tunnel has for its first handshake.</summary>
    public TimeSpan FirstHandshakeWithin { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The age past which a handshake (or the host's latest report of it) is stale.</summary>
    public TimeSpan StaleAfter { get; set; } = TimeSpan.FromSeconds(180);

    /// <summary>How often the tunnels are judged.</summary>
    public TimeSpan CheckInterval { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>A tunnel as its catalog row has it: what it is judged on.</summary>
public sealed record TunnelReading(
    Guid MachineId, string State, string Health, DateTimeOffset? AttachedAt, DateTimeOffset? LatestHandshakeAt, DateTimeOffset? CheckedAt, DateTimeOffset? ReattachRequestedAt);

/// <summary>What a tunnel's reading comes to: up, down (with why), or a re-attach its host never answered.</summary>
public sealed record TunnelVerdict(string Health, string? Reason = null, bool ReattachUnanswered = false)
{
    /// <summary>The change the reading calls for, or null when the tunnel's recorded health still holds.</summary>
    public static TunnelVerdict? Of(TunnelReading tunnel, DateTimeOffset now, TunnelHealthOptions options)
    {
        if (tunnel.State == TunnelStates.Attaching && tunnel.ReattachRequestedAt is { } asked && now - asked > options.FirstHandshakeWithin)
        {
            return new TunnelVerdict(TunnelHealth.Down, $"its host did not set the tunnel up again within {Seconds(options.FirstHandshakeWithin)}", ReattachUnanswered: true);
        }

        if (tunnel.State != TunnelStates.Attached || tunnel.AttachedAt is not { } attached)
        {
            return null;
        }

        var reported = tunnel.CheckedAt is { } checkedAt && now - checkedAt <= options.StaleAfter;
        if (reported && tunnel.LatestHandshakeAt is { } fresh && now - fresh <= options.StaleAfter)
        {
            return tunnel.Health == TunnelHealth.Up ? null : new TunnelVerdict(TunnelHealth.Up);
        }

        if (tunnel.Health == TunnelHealth.Down)
        {
            return null;
        }

        return tunnel.LatestHandshakeAt switch
        {
            null when now - attached > options.FirstHandshakeWithin =>
                new TunnelVerdict(TunnelHealth.Down, $"no handshake with the exit node within {Seconds(options.FirstHandshakeWithin)} of attaching"),
            { } stale when now - stale > options.StaleAfter =>
                new TunnelVerdict(TunnelHealth.Down, $"its latest handshake was {Seconds(now - stale)} ago, more than {Seconds(options.StaleAfter)}"),
            { } when !reported && now - attached > options.StaleAfter =>
                new TunnelVerdict(TunnelHealth.Down, $"its host has not reported the tunnel for more than {Seconds(options.StaleAfter)}"),
            _ => null,
        };
    }

    private static string Seconds(TimeSpan span) => $"{span.TotalSeconds:0} s";
}

/// <summary>
/// Judges every attached tunnel's handshakes at an interval and records what changed on the tunnel's stream:
/// <see cref="TunnelDown"/> and <see cref="TunnelUp"/> (integration events: the audit log, webhooks and the healing
/// watchdog hear them), or <see cref="TunnelReattachFailed"/> for a re-attach its host never answered. Each change is
/// appended with the stream's expected version, so several networking instances record it once.
/// </summary>
public sealed class TunnelHealthChecks(NpgsqlDataSource dataSource, EventStore store, NetworkingOptions options, TimeProvider time, ILogger<TunnelHealthChecks> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await CheckAsync(stoppingToken);
            }
            catch (Exception exception) when (exception is NpgsqlException or TimeoutException && !stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning(exception, "Tunnel health check failed; retrying");
            }

            await Task.Delay(options.Tunnels.CheckInterval, time, stoppingToken);
        }
    }

    public async Task CheckAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        foreach (var reading in await ReadAsync(cancellationToken))
        {
            if (TunnelVerdict.Of(reading, now, options.Tunnels) is { } verdict)
            {
                await RecordAsync(reading, verdict, now, cancellationToken);
            }
        }
    }

    private async Task<IReadOnlyList<TunnelReading>> ReadAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            SELECT machine_id, state, health, attached_at, latest_handshake_at, checked_at, reattach_requested_at FROM {store.Schema}.tunnels
            WHERE state = '{TunnelStates.Attached}' OR (state = '{TunnelStates.Attaching}' AND reattach_requested_at IS NOT NULL)
            """);
        var readings = new List<TunnelReading>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            readings.Add(new TunnelReading(reader.GetGuid(0), reader.GetString(1), reader.GetString(2), Optional(reader, 3), Optional(reader, 4), Optional(reader, 5), Optional(reader, 6)));
        }

        return readings;
    }

    private async Task RecordAsync(TunnelReading reading, TunnelVerdict verdict, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var stream = MachineTunnel.StreamOf(reading.MachineId);
        var loaded = await store.LoadAsync<MachineTunnel>(stream, MachineTunnel.Evolve, cancellationToken);
        if (loaded.State is not { } tunnel || tunnel.State != reading.State || (!verdict.ReattachUnanswered && tunnel.Health != reading.Health))
        {
            // The catalog row is behind its stream (it is written in the same transaction, so only for a moment): judged next time.
            return;
        }

        object change = verdict switch
        {
            { ReattachUnanswered: true } => new TunnelReattachFailed(tunnel.MachineId, tunnel.TenantId, tunnel.ExitNodeId, tunnel.Reattach ?? Guid.Empty, verdict.Reason!, now),
            { Health: TunnelHealth.Up } => new TunnelUp(tunnel.MachineId, tunnel.TenantId, tunnel.ExitNodeId, tunnel.HostId, reading.LatestHandshakeAt!.Value, now),
            _ => new TunnelDown(tunnel.MachineId, tunnel.TenantId, tunnel.ExitNodeId, tunnel.HostId, verdict.Reason!, reading.LatestHandshakeAt, now),
        };
        try
        {
            await store.AppendAsync(stream, loaded.ExpectedVersion, [change],
                new EventMetadata(TenantId: tunnel.TenantId.ToString(), Actor: "service:networking:tunnel-health"), cancellationToken);
            logger.LogInformation("Tunnel of machine {MachineId}: {Change} {Reason}", tunnel.MachineId, change.GetType().Name, verdict.Reason);
        }
        catch (WrongExpectedVersionException)
        {
            // Another instance (or a command) changed the tunnel first: judged again next time.
        }
    }

    private static DateTimeOffset? Optional(NpgsqlDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetFieldValue<DateTimeOffset>(ordinal);
}
