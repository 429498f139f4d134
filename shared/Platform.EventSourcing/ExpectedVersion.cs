namespace Platform.EventSourcing;

/// <summary>What the writer believes about a stream before appending: the store refuses the append otherwise.</summary>
public readonly record struct ExpectedVersion
{
    private const long AnyValue = -2;
    private const long NoStreamValue = -1;

    private ExpectedVersion(long value) => Value = value;

    /// <summary>The stream's version the writer read (number of events in it), or a negative marker.</summary>
    public long Value { get; }

    /// <summary>Append whatever the stream holds.</summary>
    public static ExpectedVersion Any { get; } = new(AnyValue);

    /// <summary>The stream must not exist yet.</summary>
    public static ExpectedVersion NoStream { get; } = new(NoStreamValue);

    /// <summary>The stream must be exactly at <paramref name="version"/> (0 means it must not exist).</summary>
    public static ExpectedVersion Exactly(long version)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(version);
        return version == 0 ? NoStream : new ExpectedVersion(version);
    }

    public bool IsAny => Value == AnyValue;

    public bool IsNoStream => Value == NoStreamValue;

    public override string ToString() => IsAny ? "any" : IsNoStream ? "no-stream" : Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
