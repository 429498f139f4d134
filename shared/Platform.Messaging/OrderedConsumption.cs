using MassTransit;

namespace Platform.Messaging;

/// <summary>
/// Messages about one thing (a machine, a tenant) consumed one at a time, in the order they arrive, retries included.
/// A partitioner alone is not enough: the bus-wide retry (<see cref="RetryPolicy"/>) sits outside it, so a message that
/// failed and waits for its retry leaves its partition free, and a later message about the same thing overtakes it (a
/// machine's exit recorded before its launch). Here the same retries run inside the partition, holding the later
/// messages back; the bus-wide retry is left as the last resort.
/// </summary>
/// <remarks>
/// What it does not order: messages about one thing delivered at the same instant. MassTransit hands each RabbitMQ
/// delivery to a task of its own, and those tasks reach the partition in whatever order they are scheduled (seen on a
/// loaded host: five messages published back to back were handled as 1, 4, 2, 3, 0). An endpoint whose messages about
/// one thing can arrive together and must be handled in order needs PrefetchCount = 1.
/// </remarks>
public static class OrderedConsumption
{
    public static void UsePartitionInOrder<T>(this IPipeConfigurator<ConsumeContext<T>> message, IPartitioner partitioner, Func<ConsumeContext<T>, Guid> key)
        where T : class
    {
        message.UsePartitioner(partitioner, key);
        message.UseMessageRetry(RetryPolicy.Configure);
        message.UseMessageRetry(RetryPolicy.ConfigureConcurrency);
    }
}
