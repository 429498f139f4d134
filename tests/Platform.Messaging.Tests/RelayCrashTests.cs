using System.Collections.Concurrent;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Platform.Contracts;
using Platform.Contracts.Operations;
using Platform.EventSourcing;
using Platform.Messaging.Sagas;
using Platform.Testing;

namespace Platform.Messaging.Tests;

public sealed class RelayCrashTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const int Events = 6_000;

    [Fact]
    public async Task Killing_the_relay_mid_stream_and_restarting_it_delivers_every_event_and_the_inbox_drops_the_repeats()
    {
        await using var database = await PostgresDatabase.CreateAsync();
        await using var virtualHost = await RabbitVirtualHost.CreateAsync();
        var contracts = new EventTypeRegistry().MapAll(ContractsAssembly.Assembly, "Platform.Contracts.");
        var serviceStore = new EventStore(database.DataSource, new EventStoreOptions { Schema = "provisioning", Types = contracts });
        await serviceStore.MigrateAsync();
        await SchemaMigrator.ApplyAsync(database.DataSource, "provisioning", [.. Inbox.Inbox.Migrations, .. SagaStore.Migrations]);
        for (var batch = 0; batch < Events / 500; batch++)
        {
            var events = Enumerable.Range(0, 500)
                .Select(i => (object)new ServiceStarted("provisioning", "test", Guid.CreateVersion7(), $"host-{batch}-{i}", DateTimeOffset.UtcNow))
                .ToArray();
            await serviceStore.AppendAsync($"relay-test-{batch}", ExpectedVersion.NoStream, events);
        }

        var consumerStore = new EventStore(database.DataSource, new EventStoreOptions { Schema = "consumer", Types = contracts });
        await consumerStore.MigrateAsync();
        await SchemaMigrator.ApplyAsync(database.DataSource, "consumer", Inbox.Inbox.Migrations);
        var log = new DeliveryLog();
        await using var bus = await TestBus.StartAsync(
            virtualHost,
            "relay-test",
            services => services.AddSingleton(new Inbox.Inbox(consumerStore)).AddSingleton(log),
            configure => configure.AddConsumer<ServiceStartedConsumer>());
        var environment = new Dictionary<string, string>
        {
            ["ConnectionStrings__Postgres"] = database.ConnectionString,
            ["ConnectionStrings__RabbitMq"] = virtualHost.ConnectionString,
        };

        await using (var first = ServiceProcess.Start("provisioning", environment))
        {
            await Eventually.TrueAsync(() => log.Handled >= Events / 5, TimeSpan.FromSeconds(90), "the relay starts publishing");
            await first.KillAsync();
        }

        var checkpointAtCrash = await database.ScalarAsync<long>("SELECT position FROM provisioning.checkpoints WHERE name = 'relay'");
        Assert.InRange(checkpointAtCrash, 0, Events - 1);
        await using var second = ServiceProcess.Start("provisioning", environment);
        // Each start of the service appends its own ServiceStarted: Events + 2 in all.
        await Eventually.TrueAsync(() => log.Handled >= Events + 2, TimeSpan.FromSeconds(120), "every event arrives after the restart");
        await Task.Delay(1000);

        var stored = await database.ScalarAsync<long>("SELECT count(*) FROM provisioning.mt_events");
        var storedIds = (await serviceStore.ReadAllAsync(0, Events + 10)).Select(e => e.EventId).ToHashSet();
        Assert.Equal(Events + 2, stored);
        Assert.Equal(Events + 2, log.Handled);
        Assert.True(storedIds.SetEquals(log.HandledIds), "every stored event arrived, under its event id");
        Assert.Equal(Events + 2L, await database.ScalarAsync<long>("SELECT count(*) FROM consumer.inbox"));
        Assert.True(log.Deliveries >= log.Handled);
        output.WriteLine($"checkpoint at crash: {checkpointAtCrash}; deliveries: {log.Deliveries}; handled once: {log.Handled}; repeats dropped by the inbox: {log.Deliveries - log.Handled}");
    }

    private sealed class DeliveryLog
    {
        private readonly ConcurrentDictionary<Guid, byte> _handled = new();
        private int _deliveries;

        public int Deliveries => Volatile.Read(ref _deliveries);

        public int Handled => _handled.Count;

        public IReadOnlyCollection<Guid> HandledIds => _handled.Keys.ToArray();

        public void Delivered() => Interlocked.Increment(ref _deliveries);

        public void Handle(Guid messageId)
        {
            if (!_handled.TryAdd(messageId, 0))
            {
                throw new InvalidOperationException($"Message {messageId} was handled twice: the inbox let a repeat through.");
            }
        }
    }

    private sealed class ServiceStartedConsumer(Inbox.Inbox inbox, DeliveryLog log) : IConsumer<ServiceStarted>
    {
        public async Task Consume(ConsumeContext<ServiceStarted> context)
        {
            log.Delivered();
            await inbox.HandleOnceAsync(context, "service-started-counter", _ =>
            {
                log.Handle(context.MessageId!.Value);
                return Task.CompletedTask;
            });
        }
    }
}
