namespace Platform.EventSourcing.Tests.Events;

public sealed record CounterOpened(string Name);

public sealed record CounterIncremented(int By);

public sealed record Written(int Writer, int Sequence);

internal static class TestEventTypes
{
    public static EventTypeRegistry Registry() =>
        new EventTypeRegistry().MapAll(typeof(CounterOpened).Assembly, "Platform.EventSourcing.Tests.Events");
}
