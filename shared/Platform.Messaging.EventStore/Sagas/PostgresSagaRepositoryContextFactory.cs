using MassTransit;
using MassTransit.Saga;

namespace Platform.Messaging.Sagas;

/// <summary>
/// Runs each message's saga work against the saga table. Concurrency is optimistic: an instance is read without a
/// lock and written back, in one statement, only if its version is unchanged; a lost race throws
/// <see cref="ConcurrencyException"/> and the retry policy runs the message again on fresh state. No transaction spans
/// the work, so no connection is held while the state machine's activities run.
/// </summary>
public sealed class PostgresSagaRepositoryContextFactory<TSaga>(SagaStore store, ISagaConsumeContextFactory<SagaStore, TSaga> factory)
    : ISagaRepositoryContextFactory<TSaga>
    where TSaga : class, ISagaVersion
{
    public Task Send<T>(ConsumeContext<T> context, IPipe<SagaRepositoryContext<TSaga, T>> next)
        where T : class =>
        next.Send(new PostgresSagaRepositoryContext<TSaga, T>(store, context, factory));

    public Task SendQuery<T>(ConsumeContext<T> context, ISagaQuery<TSaga> query, IPipe<SagaRepositoryQueryContext<TSaga, T>> next)
        where T : class =>
        throw new NotSupportedException($"{typeof(TSaga).Name} is kept in PostgreSQL by correlation id only: correlate its events with CorrelateById.");

    public void Probe(ProbeContext context) => context.Add("persistence", "postgresql");
}
