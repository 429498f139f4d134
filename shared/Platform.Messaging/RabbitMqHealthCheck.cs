using Microsoft.Extensions.Diagnostics.HealthChecks;
using RabbitMQ.Client;

namespace Platform.Messaging;

/// <summary>
/// Ready only while the broker accepts this service's credentials on its virtual host. The bus's own check
/// follows receive endpoints only, so a service that only publishes would look healthy without a broker.
/// Keeps one idle connection and reconnects when the broker has closed it.
/// </summary>
internal sealed class RabbitMqHealthCheck(RabbitMqAddress address) : IHealthCheck, IAsyncDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private IConnection? _connection;

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(3));
            if (_connection is { IsOpen: true } && await OpensChannelAsync(_connection, timeout.Token))
            {
                return HealthCheckResult.Healthy($"RabbitMQ at {address} connected");
            }

            if (_connection is not null)
            {
                await _connection.DisposeAsync();
                _connection = null;
            }

            _connection = await address.ConnectAsync("health-check", timeout.Token);
            return HealthCheckResult.Healthy($"RabbitMQ at {address} connected");
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return HealthCheckResult.Unhealthy($"RabbitMQ at {address} unreachable: {exception.GetBaseException().Message}");
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>A round trip proves the connection is alive: a closed socket or a deleted virtual host is not always noticed until used.</summary>
    private static async Task<bool> OpensChannelAsync(IConnection connection, CancellationToken cancellationToken)
    {
        try
        {
            await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
            return true;
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync();
        }

        _gate.Dispose();
    }
}
