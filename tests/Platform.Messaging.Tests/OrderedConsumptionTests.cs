using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Platform.Messaging;
using Platform.Testing;

namespace Platform.Messaging.Tests;

/// <summary>Messages about one thing keep their order through retries, on a real broker.</summary>
public sealed class OrderedConsumptionTests
{
    [Fact]
    public async Task A_message_that_fails_and_is_retried_is_not_overtaken_by_a_later_message_about_the_same_thing()
    {
        await using var virtualHost = await RabbitVirtualHost.CreateAsync();
        var log = new StepLog();
        await using var bus = await TestBus.StartAsync(
            virtualHost,
            "ordered-test",
            services => services.AddSingleton(log),
            configure => configure.AddConsumer<StepConsumer, StepConsumerDefinition>());
        var thing = Guid.NewGuid();

        // The later message arrives while the first is between its attempts. (Two messages delivered at the same instant
        // may still be dispatched in either order: MassTransit hands each delivery to a task of its own. See
        // OrderedConsumption.)
        await bus.Bus.Publish(new Step(thing, 0));
        await Eventually.TrueAsync(() => { lock (log) { return log.Attempts.GetValueOrDefault(0) >= 1; } }, TimeSpan.FromSeconds(30), "the first step was tried");
        await bus.Bus.Publish(new Step(thing, 1));

        await Eventually.TrueAsync(() => { lock (log) { return log.Handled.Count == 2; } }, TimeSpan.FromSeconds(30), "both steps are handled");
        Assert.Equal([0, 1], log.Handled);
        Assert.Equal(3, log.Attempts[0]);
    }

    public sealed record Step(Guid Thing, int Number);

    public sealed class StepLog
    {
        public List<int> Handled { get; } = [];

        public Dictionary<int, int> Attempts { get; } = [];
    }

    /// <summary>The first step fails twice (a passing fault, as a database that blinked): the bus-wide retry would wait 0, then 50 ms.</summary>
    public sealed class StepConsumer(StepLog log) : IConsumer<Step>
    {
        public Task Consume(ConsumeContext<Step> context)
        {
            lock (log)
            {
                var attempts = log.Attempts[context.Message.Number] = log.Attempts.GetValueOrDefault(context.Message.Number) + 1;
                if (context.Message.Number == 0 && attempts < 3)
                {
                    throw new InvalidOperationException("a passing fault");
                }

                log.Handled.Add(context.Message.Number);
            }

            return Task.CompletedTask;
        }
    }

    public sealed class StepConsumerDefinition : ConsumerDefinition<StepConsumer>
    {
        protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpoint, IConsumerConfigurator<StepConsumer> consumer, IRegistrationContext context)
        {
            endpoint.PrefetchCount = 16;
            var partitioner = endpoint.CreatePartitioner(4);
            consumer.Message<Step>(m => m.UsePartitionInOrder(partitioner, c => c.Message.Thing));
        }
    }
}
