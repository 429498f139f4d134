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

        for (var step = 0; step < 5; step++)
        {
            await bus.Bus.Publish(new Step(thing, step));
        }

        await Eventually.TrueAsync(() => log.Handled.Count == 5, TimeSpan.FromSeconds(30), "every step is handled");
        Assert.Equal([0, 1, 2, 3, 4], log.Handled);
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
