using MassTransit;

namespace Platform.Messaging.Tests.Racing;

public sealed record RaceStarted(Guid RaceId);

public sealed record LapCompleted(Guid RaceId, int Lap);

public sealed class RaceState : SagaStateMachineInstance, ISagaVersion
{
    public Guid CorrelationId { get; set; }

    public string CurrentState { get; set; } = "";

    public int Version { get; set; }

    public List<int> Laps { get; set; } = [];
}

public sealed class RaceStateMachine : MassTransitStateMachine<RaceState>
{
    private static int _retriedLaps;

    public RaceStateMachine()
    {
        InstanceState(race => race.CurrentState);
        Event(() => Started, e => e.CorrelateById(context => context.Message.RaceId));
        Event(() => Lap, e => e.CorrelateById(context => context.Message.RaceId));

        Initially(When(Started).TransitionTo(Running));
        During(Running,
            Ignore(Started),
            When(Lap).Then(context =>
            {
                if (context.GetRetryAttempt() > 0)
                {
                    Interlocked.Increment(ref _retriedLaps);
                }

                context.Saga.Laps.Add(context.Message.Lap);
            }));
    }

    public static int RetriedLaps => Volatile.Read(ref _retriedLaps);

    public State Running { get; private set; } = null!;

    public Event<RaceStarted> Started { get; private set; } = null!;

    public Event<LapCompleted> Lap { get; private set; } = null!;

    public static void ResetCounters() => Interlocked.Exchange(ref _retriedLaps, 0);
}
