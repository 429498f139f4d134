using System.Text.Json;
using MassTransit;
using MassTransit.Context;
using MassTransit.Saga;
using Npgsql;
using Platform.Contracts;

namespace Platform.Messaging.Sagas;

internal sealed class PostgresSagaRepositoryContext<TSaga, TMessage>(
    SagaStore store,
    ConsumeContext<TMessage> consumeContext,
    ISagaConsumeContextFactory<SagaStore, TSaga> factory)
    : ConsumeContextScope<TMessage>(consumeContext), SagaRepositoryContext<TSaga, TMessage>
    where TSaga : class, ISagaVersion
    where TMessage : class
{
    private static readonly string SagaType = typeof(TSaga).Name;

    public Task<SagaConsumeContext<TSaga, T>> CreateSagaConsumeContext<T>(ConsumeContext<T> consumeContext, TSaga instance, SagaConsumeContextMode mode)
        where T : class =>
        factory.CreateSagaConsumeContext(store, consumeContext, instance, mode);

    public Task<SagaConsumeContext<TSaga, TMessage>> Add(TSaga instance) =>
        factory.CreateSagaConsumeContext(store, this, instance, SagaConsumeContextMode.Add);

    public async Task<SagaConsumeContext<TSaga, TMessage>> Insert(TSaga instance)
    {
        instance.Version = 1;
        var inserted = await ExecuteAsync(
            $"INSERT INTO {store.Schema}.sagas (saga_type, correlation_id, version, state) VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT DO NOTHING",
            instance.CorrelationId,
            instance.Version,
            Serialize(instance));
        return inserted == 0
            ? null!
            : await factory.CreateSagaConsumeContext(store, this, instance, SagaConsumeContextMode.Insert);
    }

    public async Task<SagaConsumeContext<TSaga, TMessage>> Load(Guid correlationId)
    {
        await using var command = store.Command($"SELECT version, state FROM {store.Schema}.sagas WHERE saga_type = $1 AND correlation_id = $2");
        command.Parameters.Add(new NpgsqlParameter { Value = SagaType });
        command.Parameters.Add(new NpgsqlParameter { Value = correlationId });
        TSaga? instance = null;
        await using (var reader = await command.ExecuteReaderAsync(CancellationToken))
        {
            if (await reader.ReadAsync(CancellationToken))
            {
                instance = JsonSerializer.Deserialize<TSaga>(reader.GetString(1), PlatformJson.Options)!;
                instance.Version = reader.GetInt32(0);
            }
        }

        return instance is null
            ? null!
            : await factory.CreateSagaConsumeContext(store, this, instance, SagaConsumeContextMode.Load);
    }

    public async Task Save(SagaConsumeContext<TSaga> sagaContext)
    {
        var instance = sagaContext.Saga;
        instance.Version = 1;
        try
        {
            await ExecuteAsync(
                $"INSERT INTO {store.Schema}.sagas (saga_type, correlation_id, version, state) VALUES ($1, $2, $3, $4::jsonb)",
                instance.CorrelationId,
                instance.Version,
                Serialize(instance));
        }
        catch (PostgresException exception) when (exception.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            throw new ConcurrencyException($"{SagaType} {instance.CorrelationId} was created by a concurrent message.", typeof(TSaga), instance.CorrelationId);
        }
    }

    public async Task Update(SagaConsumeContext<TSaga> sagaContext)
    {
        var instance = sagaContext.Saga;
        var expected = instance.Version;
        instance.Version = expected + 1;
        var updated = await ExecuteAsync(
            $"UPDATE {store.Schema}.sagas SET version = $3, state = $4::jsonb, updated_at = now() WHERE saga_type = $1 AND correlation_id = $2 AND version = $5",
            instance.CorrelationId,
            instance.Version,
            Serialize(instance),
            expected);
        if (updated == 0)
        {
            throw new ConcurrencyException($"{SagaType} {instance.CorrelationId} changed since version {expected} was read.", typeof(TSaga), instance.CorrelationId);
        }
    }

    public async Task Delete(SagaConsumeContext<TSaga> sagaContext)
    {
        var instance = sagaContext.Saga;
        var deleted = await ExecuteAsync(
            $"DELETE FROM {store.Schema}.sagas WHERE saga_type = $1 AND correlation_id = $2 AND version = $3",
            instance.CorrelationId,
            instance.Version);
        if (deleted == 0)
        {
            throw new ConcurrencyException($"{SagaType} {instance.CorrelationId} changed since version {instance.Version} was read.", typeof(TSaga), instance.CorrelationId);
        }
    }

    public Task Discard(SagaConsumeContext<TSaga> sagaContext) => Task.CompletedTask;

    public Task Undo(SagaConsumeContext<TSaga> sagaContext) => Task.CompletedTask;

    private static string Serialize(TSaga instance) => JsonSerializer.Serialize(instance, PlatformJson.Options);

    private async Task<int> ExecuteAsync(string sql, Guid correlationId, params object[] values)
    {
        await using var command = store.Command(sql);
        command.Parameters.Add(new NpgsqlParameter { Value = SagaType });
        command.Parameters.Add(new NpgsqlParameter { Value = correlationId });
        foreach (var value in values)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }

        return await command.ExecuteNonQueryAsync(CancellationToken);
    }
}
