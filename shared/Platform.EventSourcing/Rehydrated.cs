namespace Platform.EventSourcing;

/// <summary>An aggregate's state folded from its stream, with the version to expect on the next append.</summary>
public sealed record Rehydrated<TState>(TState? State, long Version)
    where TState : class
{
    public bool Exists => Version > 0;

    public ExpectedVersion ExpectedVersion => ExpectedVersion.Exactly(Version);
}
