using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Platform.Contracts.Provisioning;
using Platform.EventSourcing;
using Platform.Messaging.Relay;
using Platform.Provisioning.Machines;
using Platform.Provisioning.Machines.Saga;

namespace Platform.Unit.Tests.Provisioning.Machines;

/// <summary>
/// The machine saga alone in MassTransit's in-memory test harness, deciding against machine streams in memory and a clock
/// the test moves: the test plays every other service (it answers the commands the saga issues) and the deadline sweeper
/// (it publishes <see cref="MachineStepOverdue"/>).
/// </summary>
internal sealed class MachineSagaHarness : IAsyncDisposable
{
    public static readonly MachineSagaOptions Options = new() { StepTimeout = TimeSpan.FromSeconds(30), LaunchTimeout = TimeSpan.FromMinutes(2), MaxAttempts = 2 };

    public static readonly Guid Host = Guid.CreateVersion7();
    public static readonly Guid Tenant = Guid.CreateVersion7();
    public const string Owner = "user:alice";

    private readonly ServiceProvider _provider;

    private MachineSagaHarness(ServiceProvider provider, InMemoryEventStreams streams, FakeTimeProvider time)
    {
        _provider = provider;
        Streams = streams;
        Time = time;
        Bus = provider.GetRequiredService<ITestHarness>();
        Saga = Bus.GetSagaStateMachineHarness<MachineSaga, MachineSagaState>();
    }

    public InMemoryEventStreams Streams { get; }

    public FakeTimeProvider Time { get; }

    public ITestHarness Bus { get; }

    public ISagaStateMachineTestHarness<MachineSaga, MachineSagaState> Saga { get; }

    public MachineSaga Machine => Saga.StateMachine;

    public static async Task<MachineSagaHarness> StartAsync()
    {
        var streams = new InMemoryEventStreams();
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 7, 12, 0, 0, TimeSpan.Zero));
        var provider = new ServiceCollection()
            .AddSingleton(Options)
            .AddSingleton<IEventStreams>(streams)
            .AddSingleton<TimeProvider>(time)
            .AddSingleton<MachineRecorder>()
            .AddMassTransitTestHarness(bus =>
            {
                bus.AddSagaStateMachine<MachineSaga, MachineSagaState, MachineSagaDefinition>().InMemoryRepository();
            })
            .BuildServiceProvider(validateScopes: true);
        var harness = new MachineSagaHarness(provider, streams, time);
        await harness.Bus.Start();
        return harness;
    }

    /// <summary>A tenant's request as the API records it (the machine's first event), relayed to the saga with its actor.</summary>
    public async Task<MachineRequested> RequestAsync(Guid? exitNodeId = null)
    {
        var requested = new MachineRequested(Guid.CreateVersion7(), Tenant, Guid.CreateVersion7(), "m", "sandbox", "sandbox", Host, new TemplateRef("sandbox-host", "abc"),
            new MachineShape(1, 64, 0), new Dictionary<string, string>(), null, "auto", Time.GetUtcNow(), exitNodeId);
        Streams.Given(Platform.Provisioning.Machines.Machine.StreamOf(requested.MachineId), requested);
        await Bus.Bus.Publish(requested, context => context.Headers.Set(RelayHeaders.Actor, Owner));
        await UntilAsync(() => Existing(Saga.Consumed).Any(m => m.MessageObject is MachineRequested r && r.MachineId == requested.MachineId), "the saga handles the request");
        return requested;
    }

    /// <summary>A user's destroy as the API records it, then relayed.</summary>
    public async Task<MachineDestroyRequested> DestroyAsync(Guid machineId)
    {
        var destroy = new MachineDestroyRequested(machineId, Tenant, Guid.CreateVersion7(), Time.GetUtcNow());
        Streams.Given(Platform.Provisioning.Machines.Machine.StreamOf(machineId), destroy);
        await AnswerAsync(destroy);
        return destroy;
    }

    /// <summary>
    /// Publishes what another service answers and waits until the saga has handled it: what the saga issued while handling
    /// it is then in <see cref="ITestHarness.Published"/> and <see cref="ITestHarness.Sent"/>.
    /// </summary>
    public async Task AnswerAsync<T>(T message) where T : class
    {
        var handled = Existing(Saga.Consumed).Count(m => m.MessageObject is T);
        await Bus.Bus.Publish(message);
        // The test publishes one message at a time: the next one of its type the saga handles is this one.
        await UntilAsync(() => Existing(Saga.Consumed).Count(m => m.MessageObject is T) > handled, $"the saga handles {message}");
    }

    /// <summary>Publishes a message and waits until the bus has delivered it, whether the saga had a flow for it or not.</summary>
    public async Task DeliverAsync<T>(T message) where T : class
    {
        await Bus.Bus.Publish(message);
        await UntilAsync(() => Existing(Bus.Consumed).Any(m => m.MessageObject is T && m.MessageObject.Equals(message)), $"the bus delivers {message}");
    }

    /// <summary>The commands of type <typeparamref name="T"/> the saga published about the machine so far, in order.</summary>
    public IReadOnlyList<T> Published<T>(Func<T, bool> about) where T : class =>
        Existing(Bus.Published).Select(m => m.MessageObject).OfType<T>().Where(about).ToArray();

    /// <summary>The one command of type <typeparamref name="T"/> the saga published about the machine.</summary>
    public T PublishedOnce<T>(Func<T, bool> about) where T : class => Assert.Single(Published(about));

    /// <summary>The one command of type <typeparamref name="T"/> the saga sent about the machine, to its host agent's own queue.</summary>
    public T SentToHostOnce<T>(Func<T, bool> about) where T : class
    {
        var sent = Assert.Single(Existing(Bus.Sent), m => m.MessageObject is T command && about(command));
        Assert.Equal(HostAgentQueue.NameOf(Host), sent.Context.DestinationAddress!.AbsolutePath.Split('/')[^1]);
        return (T)sent.MessageObject;
    }

    /// <summary>The flow's state once it is in <paramref name="state"/>.</summary>
    public async Task<MachineSagaState> InStateAsync(Guid machineId, Func<MachineSaga, MassTransit.State> state)
    {
        var name = state(Machine).Name;
        await UntilAsync(() => Saga.Sagas.Contains(machineId)?.CurrentState == name, $"the flow of {machineId} reaches {name}");
        return Saga.Sagas.Contains(machineId)!;
    }

    /// <summary>Waits until the machine's flow has ended (its instance is final, which removes it from the repository).</summary>
    public Task EndedAsync(Guid machineId) =>
        UntilAsync(() => Saga.Sagas.Contains(machineId)?.CurrentState is null or "Final", $"the flow of {machineId} ends");

    public IReadOnlyList<object> MachineEvents(Guid machineId) => Streams.Read(Platform.Provisioning.Machines.Machine.StreamOf(machineId));

    /// <summary>What a list of the harness holds now, without waiting for more.</summary>
    private static IEnumerable<TElement> Existing<TElement>(IAsyncElementList<TElement> list) where TElement : class, IAsyncListElement =>
        list.Select(_ => true, new CancellationToken(canceled: true));

    private static async Task UntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"Within 10 s: {what}.");
            await Task.Delay(5);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Bus.Stop();
        await _provider.DisposeAsync();
    }
}
