namespace Platform.Provisioning.Drivers.Guests;

/// <summary>
/// A process's standard input as a write-only stream: writes go to <see cref="WriteToProcessAsync"/>, and closing it
/// (once) is the end of the input, <see cref="EndOfInput"/>.
/// </summary>
internal abstract class GuestInput : Stream
{
    private int _closed;

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_closed == 1, this);
        await WriteToProcessAsync(buffer, cancellationToken);
    }

    protected abstract Task WriteToProcessAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken);

    /// <summary>Tells the process its input has ended; an error because it ended already is the implementer's to swallow.</summary>
    protected abstract void EndOfInput();

    protected override void Dispose(bool disposing)
    {
        if (disposing && Interlocked.Exchange(ref _closed, 1) == 0)
        {
            EndOfInput();
        }

        base.Dispose(disposing);
    }
}
