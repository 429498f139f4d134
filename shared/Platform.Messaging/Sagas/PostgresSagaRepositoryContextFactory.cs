using MassTransit;
using MassTransit.Saga;

namespace Platform.Messaging.Sagas;

/// <summary>
/// Runs each message's saga work in one PostgreSQL transaction. Concurrency is optimistic: an instance is
/// read without a lock and written back only if its version is unchanged; a lost race throws
/// <see cref="ConcurrencyException"/> and the retry policy runs the message again on fresh state.
/// </summary>
public sealed class PostgresSagaRepositoryContextFactory<TSaga>(SagaStore store, ISagaConsumeContextFactory<SagaTransaction, TSaga> factory)
    : ISagaRepositoryContextFactory<TSaga>
    where TSaga : class, ISagaVersion
{
    public async Task Send<T>(ConsumeContext<T> context, IPipe<SagaRepositoryContext<TSaga, T>> next)
        where T : class
    {
        await using var transaction = await store.BeginAsync(context.CancellationToken);
        await next.Send(new PostgresSagaRepositoryContext<TSaga, T>(transaction, context, factory));
        await transaction.Transaction.CommitAsync(context.CancellationToken);
    }

    public Task SendQuery<T>(ConsumeContext<T> context, ISagaQuery<TSaga> query, IPipe<SagaRepositoryQueryContext<TSaga, T>> next)
        where T : class =>
        throw new NotSupportedException($"{typeof(TSaga).Name} is kept in PostgreSQL by correlation id only: correlate its events with CorrelateById.");

    public void Probe(ProbeContext context) => context.Add("persistence", "postgresql");
}
