namespace Platform.Provisioning.Drivers.Guests;

/// <summary>
/// Logs kept in files that a machine's process appends to (a sandbox's output files, a micro-VM's serial log): their
/// last lines, then, when following, what is appended next, polled, until the machine has ended. A file that shrank
/// was emptied (trimmed): a follower starts it again from its beginning.
/// </summary>
public static class LogFiles
{
    /// <summary>How far back a tail looks for its lines.</summary>
    public const int MaxTailBytes = 64 * 1024;

    private const int MaxChunkBytes = 1024 * 1024;
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan TrimInterval = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The last <paramref name="tailLines"/> lines of each file in turn (all of each when null), then, when
    /// <paramref name="follow"/>, what each gets next until <paramref name="ended"/> completes.
    /// </summary>
    public static async IAsyncEnumerable<LogChunk> ReadAsync(
        IReadOnlyList<(string Stream, string Path)> files,
        int? tailLines,
        bool follow,
        Task ended,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var positions = new long[files.Count];
        for (var i = 0; i < files.Count; i++)
        {
            var (data, end) = ReadTail(files[i].Path, tailLines);
            positions[i] = end;
            if (data.Length > 0)
            {
                yield return new LogChunk(files[i].Stream, data);
            }
        }

        while (follow && !cancellationToken.IsCancellationRequested)
        {
            var wasEnded = ended.IsCompleted;
            for (var i = 0; i < files.Count; i++)
            {
                var (data, end) = ReadFrom(files[i].Path, positions[i]);
                positions[i] = end;
                if (data.Length > 0)
                {
                    yield return new LogChunk(files[i].Stream, data);
                }
            }

            if (wasEnded)
            {
                yield break;
            }

            try
            {
                await Task.WhenAny(ended, Task.Delay(PollInterval, cancellationToken));
            }
            catch (OperationCanceledException)
            {
                yield break;
            }
        }
    }

    /// <summary>
    /// Empties each of <paramref name="files"/> that has grown past <paramref name="maxBytes"/>, every second, until
    /// <paramref name="ended"/> completes: a process may write for days. Their writers append (<c>O_APPEND</c>), so the
    /// next write lands at the new end; a follower starts the file again from its beginning.
    /// </summary>
    public static async Task TrimAsync(Func<IReadOnlyList<string>> files, long maxBytes, Task ended, CancellationToken cancellationToken)
    {
        try
        {
            while (!ended.IsCompleted)
            {
                await Task.WhenAny(ended, Task.Delay(TrimInterval, cancellationToken));
                foreach (var path in files())
                {
                    var file = new FileInfo(path);
                    if (file.Exists && file.Length > maxBytes)
                    {
                        using var stream = new FileStream(file.FullName, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
                        stream.SetLength(0);
                    }
                }
            }
        }
        catch (Exception exception) when (exception is OperationCanceledException or IOException or UnauthorizedAccessException)
        {
            // Disposed, or the files went with their directory.
        }
    }

    private static (byte[] Data, long End) ReadTail(string file, int? lines)
    {
        try
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var end = stream.Length;
            var start = lines is null ? Math.Max(0, end - MaxChunkBytes) : Math.Max(0, end - MaxTailBytes);
            stream.Seek(start, SeekOrigin.Begin);
            var data = new byte[end - start];
            stream.ReadExactly(data);
            if (lines is { } wanted)
            {
                var cut = data.Length;
                for (var found = 0; cut > 0; cut--)
                {
                    // The last line may lack its newline; each newline before it closes one more line.
                    if (data[cut - 1] == (byte)'\n' && cut != data.Length && ++found == wanted)
                    {
                        break;
                    }
                }

                data = data[cut..];
            }

            return (data, end);
        }
        catch (Exception exception) when (exception is FileNotFoundException or DirectoryNotFoundException)
        {
            return ([], 0);
        }
    }

    private static (byte[] Data, long End) ReadFrom(string file, long position)
    {
        try
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var end = stream.Length;
            if (end < position)
            {
                position = 0;
            }

            stream.Seek(position, SeekOrigin.Begin);
            var data = new byte[Math.Min(end - position, MaxChunkBytes)];
            stream.ReadExactly(data);
            return (data, position + data.Length);
        }
        catch (Exception exception) when (exception is FileNotFoundException or DirectoryNotFoundException)
        {
            return ([], position);
        }
    }
}
