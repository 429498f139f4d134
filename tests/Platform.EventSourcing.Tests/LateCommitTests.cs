using Npgsql;
using Platform.EventSourcing.Subscriptions;
using Platform.EventSourcing.Tests.Events;
using Platform.Testing;

namespace Platform.EventSourcing.Tests;

/// <summary>
/// Positions are drawn from Marten's sequence when an append runs, not when it commits: an append held open after drawing
/// commits below positions that others committed meanwhile. A reader of the global order must neither skip it nor stop.
/// </summary>
public sealed class LateCommitTests
{
    private static readonly TimeSpan HeldFor = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task An_append_held_open_for_twenty_seconds_while_others_commit_is_read_in_its_place_and_none_is_passed_over()
    {
        var slow = new HoldsTheSlowStreamOpen(HeldFor);
        await using var fixture = await StoreFixture.CreateAsync(inline: [slow]);
        await fixture.Store.AppendAsync("before", ExpectedVersion.Any, [new CounterIncremented(1)]);

        var late = fixture.Store.AppendAsync("slow", ExpectedVersion.Any, [new CounterIncremented(2)]);
        await slow.PositionDrawn.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var held = System.Diagnostics.Stopwatch.StartNew();
        var others = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => fixture.Store.AppendAsync($"other-{i}", ExpectedVersion.Any, [new CounterIncremented(3)])));

        // The others committed around the open one: position 2 is missing from what PostgreSQL shows committed.
        Assert.False(late.IsCompleted);
        Assert.Equal(Enumerable.Range(3, 20).Select(p => (long)p), others.Select(o => o.LastPosition).Order());
        var committed = await CommittedPositionsAsync(fixture);
        Assert.Equal(new long[] { 1 }.Concat(Enumerable.Range(3, 20).Select(p => (long)p)), committed);

        // A tailing reader started now waits for the open append rather than pass over its position.
        var collector = new Collector();
        using var stop = new CancellationTokenSource();
        var tailing = CatchUpSubscription.ForSubscriber(fixture.Store, collector).RunAsync(stop.Token);
        await Eventually.TrueAsync(() => collector.Count >= 22, HeldFor + TimeSpan.FromSeconds(30), "the reader has every event");
        Assert.Equal(2, (await late).LastPosition);
        Assert.True(held.Elapsed >= HeldFor - TimeSpan.FromSeconds(2), $"the slow append was held open for {held.Elapsed}");
        await Task.Delay(300);
        await stop.CancelAsync();
        await tailing;

        Assert.Equal(Enumerable.Range(1, 22).Select(p => (long)p), collector.Events.Select(e => e.Position));
        Assert.Equal("slow", collector.Events[1].StreamId);
    }

    private static async Task<long[]> CommittedPositionsAsync(StoreFixture fixture)
    {
        await using var command = fixture.Schema.DataSource.CreateCommand($"SELECT seq_id FROM {fixture.Schema.Name}.mt_events ORDER BY seq_id");
        var positions = new List<long>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            positions.Add(reader.GetInt64(0));
        }

        return [.. positions];
    }

    /// <summary>An inline projection that keeps the transaction of an append to the stream "slow" open after its position was drawn.</summary>
    private sealed class HoldsTheSlowStreamOpen(TimeSpan heldFor) : IProjection
    {
        public TaskCompletionSource PositionDrawn { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public string Name => "holds-the-slow-stream-open";

        public async Task ApplyAsync(IReadOnlyList<StoredEvent> events, NpgsqlTransaction transaction, CancellationToken cancellationToken)
        {
            if (events.Any(e => e.StreamId == "slow"))
            {
                PositionDrawn.TrySetResult();
                await Task.Delay(heldFor, cancellationToken);
            }
        }

        public Task ResetAsync(NpgsqlTransaction transaction, CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
