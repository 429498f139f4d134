namespace Platform.HostAgent.Guests;

/// <summary>One piece of a process's output: which stream, where it starts in the process's whole output (bytes), and its bytes.</summary>
public sealed record OutputChunk(string Stream, long Offset, byte[] Data)
{
    public long End => Offset + Data.Length;

    /// <summary>Its bytes from <paramref name="offset"/> of the whole output on (all of them when it starts there or later).</summary>
    public ReadOnlyMemory<byte> After(long offset) => Data.AsMemory((int)Math.Max(0, offset - Offset));
}

/// <summary>
/// What a process inside a machine wrote, stdout and stderr in the order they came, addressed by byte offset so that a
/// reader that lost its connection resumes where it was. At most <c>maxBytes</c> are kept: past that the oldest go, and
/// a reader asking for them learns where the kept output starts.
/// </summary>
public sealed class GuestOutput(long maxBytes)
{
    private readonly Lock _lock = new();
    private readonly LinkedList<OutputChunk> _chunks = new();
    private long _kept;
    private long _end;
    private bool _completed;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>How many bytes the process wrote in all.</summary>
    public long End
    {
        get
        {
            lock (_lock)
            {
                return _end;
            }
        }
    }

    public void Append(string stream, ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return;
        }

        TaskCompletionSource changed;
        lock (_lock)
        {
            _chunks.AddLast(new OutputChunk(stream, _end, data.ToArray()));
            _end += data.Length;
            _kept += data.Length;
            while (_kept > maxBytes && _chunks.First is { } oldest)
            {
                _kept -= oldest.Value.Data.Length;
                _chunks.RemoveFirst();
            }

            changed = _changed;
            _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        changed.TrySetResult();
    }

    /// <summary>No more output will come: the process ended and its streams are drained.</summary>
    public void Complete()
    {
        TaskCompletionSource changed;
        lock (_lock)
        {
            _completed = true;
            changed = _changed;
        }

        changed.TrySetResult();
    }

    /// <summary>
    /// The chunks from <paramref name="offset"/> on (the first may start before it: a reader skips what it has), where the
    /// kept output starts, and whether that is all there will ever be.
    /// </summary>
    public (IReadOnlyList<OutputChunk> Chunks, long FirstKept, bool Completed, Task Changed) ReadFrom(long offset)
    {
        lock (_lock)
        {
            var first = _chunks.First?.Value.Offset ?? _end;
            return (_chunks.Where(c => c.End > offset).ToList(), first, _completed, _changed.Task);
        }
    }
}
