using Platform.EventSourcing.Tests.Events;

namespace Platform.EventSourcing.Tests;

/// <summary>The one decide-and-append primitive against the real store: lost races decided again, refusals writing nothing.</summary>
public sealed class DecidingTests
{
    /// <summary>A counter that allows at most <paramref name="max"/> increments: the decision depends on what was appended before.</summary>
    private static IReadOnlyList<object> IncrementUpTo(int? total, int max) =>
        total is null ? [new CounterOpened("c")] : total < max ? [new CounterIncremented(1)] : [];

    private static int? Total(int? total, object @event) => @event switch
    {
        CounterOpened => 0,
        CounterIncremented increment => total + increment.By,
        _ => total,
    };

    [Fact]
    public async Task Deciders_racing_on_one_stream_each_decide_again_on_what_the_others_appended_and_none_is_lost()
    {
        await using var fixture = await StoreFixture.CreateAsync();
        await fixture.Store.AppendAsync("counter-1", ExpectedVersion.NoStream, [new CounterOpened("c")]);

        // Twelve deciders at once, each allowed while the total is below ten: exactly ten increments, whatever the order.
        var appended = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ =>
            fixture.Store.DecideAsync<Box>("counter-1", Box.Evolve, box => IncrementUpTo(box?.Total, 10), EventMetadata.None)));

        var events = await fixture.Store.ReadStreamAsync("counter-1");
        Assert.Equal(11, events.Count);
        Assert.Equal(10, appended.Count(a => a.Count == 1));
        Assert.Equal(2, appended.Count(a => a.Count == 0));
        Assert.Equal(Enumerable.Range(1, 11).Select(v => (long)v), events.Select(e => e.StreamVersion));
    }

    [Fact]
    public async Task A_decision_that_refuses_writes_nothing_and_the_refusal_reaches_the_caller()
    {
        await using var fixture = await StoreFixture.CreateAsync();
        await fixture.Store.AppendAsync("counter-1", ExpectedVersion.NoStream, [new CounterOpened("c")]);

        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            fixture.Store.DecideAsync<Box>("counter-1", Box.Evolve, _ => throw new InvalidOperationException("not now"), EventMetadata.None));

        Assert.Equal("not now", refused.Message);
        Assert.Single(await fixture.Store.ReadStreamAsync("counter-1"));
    }

    [Fact]
    public async Task A_decision_over_two_streams_appends_to_both_or_to_neither()
    {
        await using var fixture = await StoreFixture.CreateAsync();
        await fixture.Store.AppendAsync("counter-1", ExpectedVersion.NoStream, [new CounterOpened("c")]);
        await fixture.Store.AppendAsync("counter-2", ExpectedVersion.NoStream, [new CounterOpened("d")]);

        // The second stream's expectation can never hold: nothing is appended to the first either, after every attempt.
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => fixture.Store.DecideAsync<Box>("counter-1", Box.Evolve, loaded =>
            [new StreamAppend("counter-1", loaded.ExpectedVersion, [new CounterIncremented(1)]), new StreamAppend("counter-2", ExpectedVersion.NoStream, [new CounterIncremented(1)])],
            EventMetadata.None));
        var both = await fixture.Store.DecideAsync<Box>("counter-1", Box.Evolve, loaded =>
            [new StreamAppend("counter-1", loaded.ExpectedVersion, [new CounterIncremented(1)]), new StreamAppend("counter-2", ExpectedVersion.Exactly(1), [new CounterIncremented(2)])],
            EventMetadata.None);

        Assert.Equal(2, both.Count);
        Assert.Equal(2, (await fixture.Store.ReadStreamAsync("counter-1")).Count);
        Assert.Equal(2, (await fixture.Store.ReadStreamAsync("counter-2")).Count);
    }

    /// <summary>The counter's total as an aggregate state (the store folds reference types).</summary>
    private sealed record Box(int Total)
    {
        public static Box Evolve(Box? box, object @event) => new(DecidingTests.Total(box?.Total, @event) ?? 0);
    }
}
