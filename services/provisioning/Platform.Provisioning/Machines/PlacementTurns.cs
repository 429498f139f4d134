using Platform.Hosting.Problems;

namespace Platform.Provisioning.Machines;

/// <summary>
/// Placements in one provisioning instance take turns, in the order they came: racing each other for a host's stream
/// they would mostly lose and retry. The line is bounded in length and in wait. A creation that would stand beyond
/// either is refused (429, <see cref="ProblemTypes.Overloaded"/>) before anything is written, and told how long the
/// line takes to clear. A creation in line holds no database connection.
/// </summary>
public sealed class PlacementTurns(MachineCreationOptions options, TimeProvider time)
{
    private readonly SemaphoreSlim _turn = new(1, 1);
    private int _inLine;

    // How long a turn takes, a running mean over the last few (only the holder of the turn writes it).
    private long _turnTicks = TimeSpan.FromMilliseconds(20).Ticks;

    /// <summary>Creations in line, the one placing included.</summary>
    public int InLine => Volatile.Read(ref _inLine);

    /// <summary>Waits for this creation's turn; dispose the turn when the placement is recorded or has failed.</summary>
    public async Task<Turn> TakeAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Increment(ref _inLine) > options.MaxQueued)
        {
            Interlocked.Decrement(ref _inLine);
            throw Refused($"{options.MaxQueued} creations are in line for placement already");
        }

        bool taken;
        try
        {
            taken = await _turn.WaitAsync(options.MaxQueueWait, cancellationToken);
        }
        catch
        {
            Interlocked.Decrement(ref _inLine);
            throw;
        }

        if (!taken)
        {
            var refusal = Refused($"its turn to be placed did not come within {options.MaxQueueWait.TotalSeconds:0.#} s");
            Interlocked.Decrement(ref _inLine);
            throw refusal;
        }

        return new Turn(this, time.GetTimestamp());
    }

    private void End(long startedAt)
    {
        var took = time.GetElapsedTime(startedAt).Ticks;
        Interlocked.Exchange(ref _turnTicks, (Interlocked.Read(ref _turnTicks) * 7 + took) / 8);
        Interlocked.Decrement(ref _inLine);
        _turn.Release();
    }

    private ProblemException Refused(string why)
    {
        var clears = TimeSpan.FromTicks(Interlocked.Read(ref _turnTicks) * Math.Max(1, InLine));
        return Problems.Overloaded($"Too many machine creations at once: {why}. Nothing was created; send the request again after Retry-After.", clears);
    }

    /// <summary>This creation's turn to place and record; the next in line goes when it is disposed.</summary>
    public sealed class Turn(PlacementTurns turns, long startedAt) : IDisposable
    {
        private int _ended;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _ended, 1) == 0)
            {
                turns.End(startedAt);
            }
        }
    }
}
