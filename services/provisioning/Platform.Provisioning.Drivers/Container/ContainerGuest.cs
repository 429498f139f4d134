using System.Net.Sockets;
using Docker.DotNet.Models;
using Platform.Provisioning.Drivers.Guests;

namespace Platform.Provisioning.Drivers.Container;

/// <summary>
/// How commands get into one running container. When its first process is the guest agent (<see cref="ContainerSpec.GuestAgent"/>)
/// and the command runs as root or a numeric <c>uid:gid</c>, the agent forks it: it is born in the container's
/// namespaces and cgroup, under its capabilities, seccomp profile and no-new-privileges, with the image's environment
/// and working directory, as the engine's exec would start it. Otherwise (a named user, whom only the image's
/// <c>/etc/passwd</c> knows, a container an older agent created, an agent that does not answer) it is the engine's exec.
/// </summary>
public sealed class ContainerGuest : IGuestAccess, IAsyncDisposable
{
    /// <summary>A native agent answers at once; one that takes longer is not one to wait for.</summary>
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(2);

    private readonly ContainerEngine _engine;
    private readonly string _id;
    private readonly GuestAgent? _agent;
    private readonly IReadOnlyDictionary<string, string> _environment;
    private readonly string _workingDirectory;

    public ContainerGuest(ContainerEngine engine, ContainerInspectResponse inspection)
    {
        _engine = engine;
        _id = inspection.ID;
        _environment = (inspection.Config?.Env ?? []).Select(e => e.Split('=', 2)).Where(p => p.Length == 2).DistinctBy(p => p[0]).ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);
        _workingDirectory = inspection.Config?.WorkingDir is { Length: > 0 } directory ? directory : "/";
        if (inspection.Config?.Entrypoint is [GuestAgent.Inside, "--socket", var socket, ..] && inspection.State?.Pid is > 0 and var pid)
        {
            var first = (int)pid;
            _agent = new GuestAgent("container", cancellationToken => ConnectAsync(first, socket, cancellationToken), HandshakeTimeout);
        }
    }

    /// <summary>Whether its commands are forked by its guest agent (while it answers).</summary>
    public bool HasGuestAgent => _agent is { MayAnswer: true };

    public async Task<IGuestProcess> StartAsync(GuestCommand command, CancellationToken cancellationToken)
    {
        if (command.Problem() is { } problem)
        {
            throw new GuestException(problem);
        }

        if (_agent is not null && AgentUser(command.User) is { } user)
        {
            var environment = new Dictionary<string, string>(_environment, StringComparer.Ordinal);
            environment.TryAdd("HOME", user.Uid == 0 ? "/root" : "/");
            if (await _agent.TryStartAsync(command, user.Uid, user.Gid, command.WorkingDirectory ?? _workingDirectory, environment, cancellationToken) is { } forked)
            {
                return forked;
            }
        }

        return await _engine.ExecAsync(_id, command, cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (_agent is not null)
        {
            await _agent.DisposeAsync();
        }
    }

    /// <summary>Root (the image's user: the agent is put only in front of images that run as root) or <c>uid:gid</c>; null for a name or a bare uid, whose group the image's files say.</summary>
    private static (int Uid, int Gid)? AgentUser(string? user) =>
        user is null or "root" || user.Contains(':', StringComparison.Ordinal) ? new GuestCommand(["true"]) { User = user }.NumericUser() : null;

    /// <summary>The agent's socket in the container's network namespace; only a listener in its pid namespace is talked to.</summary>
    private static Task<Socket> ConnectAsync(int first, string socket, CancellationToken cancellationToken)
    {
        var namespaceOfFirst = PidNamespaceOf(first) ?? throw new IOException($"the container's first process ({first}) is gone");
        return GuestAgent.ConnectInsideAsync(first, socket, listener => PidNamespaceOf(listener) == namespaceOfFirst, cancellationToken);
    }

    private static string? PidNamespaceOf(int processId)
    {
        try
        {
            return new FileInfo($"/proc/{processId}/ns/pid").LinkTarget;
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
