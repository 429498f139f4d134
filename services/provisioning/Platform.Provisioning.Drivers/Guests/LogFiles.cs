using System.Globalization;

namespace Platform.Provisioning.Drivers.Guests;

/// <summary>
/// Logs kept in files that a machine's process appends to (a sandbox's output files, a micro-VM's serial log): their
/// last lines, then, when following, what is appended next, polled, until the machine has ended. A file that shrank
/// was emptied (trimmed): a follower starts it again from its beginning.
/// </summary>
/// <remarks>
/// The writers are other processes, so no write carries a time. Each file has a time index next to it
/// (<c>&lt;file&gt;.times</c>, lines of <c>unix-ms size</c>): its watcher notes the file's size every second that it
/// changed, which says that the bytes up to that size were written by then. A reader that asks for what was written
/// since a time starts at the size the last note before that time gives: it never misses a byte, and may include up to a
/// second's worth from before.
/// </remarks>
public static class LogFiles
{
    /// <summary>How far back a tail looks for its lines.</summary>
    public const int MaxTailBytes = 64 * 1024;

    private const int MaxChunkBytes = 1024 * 1024;

    /// <summary>Past this many notes, every other is dropped: older times get coarser, never wrong.</summary>
    private const int MaxNotes = 4096;

    private const string TimesSuffix = ".times";
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan WatchInterval = TimeSpan.FromSeconds(1);

    /// <summary>
    /// What each file in turn holds (written after <see cref="LogQuery.Since"/>, its last <see cref="LogQuery.TailLines"/>
    /// lines), then, when following, what each gets next until <paramref name="ended"/> completes. Chunks carry the time
    /// their bytes were written by, where the index knows it.
    /// </summary>
    public static async IAsyncEnumerable<LogChunk> ReadAsync(
        IReadOnlyList<(string Stream, string Path)> files,
        LogQuery query,
        Task ended,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var positions = new long[files.Count];
        for (var i = 0; i < files.Count; i++)
        {
            var notes = Notes(files[i].Path);
            var (data, start, end) = ReadKept(files[i].Path, query, notes);
            positions[i] = end;
            foreach (var chunk in Dated(files[i].Stream, data, start, notes))
            {
                yield return chunk;
            }
        }

        while (query.Follow && !cancellationToken.IsCancellationRequested)
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
    /// Every second until <paramref name="ended"/> completes: notes the size of each of <paramref name="files"/> that
    /// changed in its time index, and empties each that has grown past <paramref name="maxBytes"/> (a process may write
    /// for days), its index with it. The writers append (<c>O_APPEND</c>), so the next write lands at the new end; a
    /// follower starts the file again from its beginning.
    /// </summary>
    public static async Task WatchAsync(Func<IReadOnlyList<string>> files, long maxBytes, Task ended, CancellationToken cancellationToken)
    {
        var noted = new Dictionary<string, long>();
        var notes = new Dictionary<string, int>();
        try
        {
            while (true)
            {
                var wasEnded = ended.IsCompleted;
                foreach (var path in files())
                {
                    var file = new FileInfo(path);
                    if (!file.Exists)
                    {
                        continue;
                    }

                    if (file.Length > maxBytes)
                    {
                        using (var stream = new FileStream(file.FullName, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete))
                        {
                            stream.SetLength(0);
                        }

                        File.Delete(path + TimesSuffix);
                        noted[path] = 0;
                        notes[path] = 0;
                    }
                    else if (file.Length != noted.GetValueOrDefault(path, 0))
                    {
                        File.AppendAllText(path + TimesSuffix, NoteLine(DateTimeOffset.UtcNow, file.Length) + "\n");
                        noted[path] = file.Length;
                        notes[path] = notes.TryGetValue(path, out var count) ? count + 1 : Notes(path).Count;
                        if (notes[path] > MaxNotes)
                        {
                            notes[path] = Thin(path);
                        }
                    }
                }

                if (wasEnded)
                {
                    return;
                }

                await Task.WhenAny(ended, Task.Delay(WatchInterval, cancellationToken));
            }
        }
        catch (Exception exception) when (exception is OperationCanceledException or IOException or UnauthorizedAccessException)
        {
            // Disposed, or the files went with their directory.
        }
    }

    /// <summary>Writes <paramref name="chunks"/> (one stream's) to <paramref name="path"/>, its last <paramref name="maxBytes"/>, with the times they carry as its index.</summary>
    public static async Task WriteAsync(string path, IReadOnlyList<LogChunk> chunks, long maxBytes, DateTimeOffset now)
    {
        var total = chunks.Sum(c => (long)c.Data.Length);
        var cut = Math.Max(0, total - maxBytes);
        await using var file = new FileStream(path, FileMode.Create, FileAccess.Write);
        var notes = new List<string>();
        var offset = 0L;
        foreach (var chunk in chunks)
        {
            var skip = (int)Math.Clamp(cut - offset, 0, chunk.Data.Length);
            await file.WriteAsync(chunk.Data[skip..]);
            offset += chunk.Data.Length;
            if (offset > cut)
            {
                notes.Add(NoteLine(chunk.WrittenBy ?? now, offset - cut));
            }
        }

        await File.WriteAllLinesAsync(path + TimesSuffix, notes);
    }

    /// <summary>The time index's notes of <paramref name="file"/>, oldest first: the size it had by each time.</summary>
    private static IReadOnlyList<(DateTimeOffset At, long Size)> Notes(string file)
    {
        try
        {
            var notes = new List<(DateTimeOffset, long)>();
            foreach (var line in File.ReadLines(file + TimesSuffix))
            {
                var parts = line.Split(' ');
                if (parts.Length == 2 && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var at)
                    && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var size))
                {
                    notes.Add((DateTimeOffset.FromUnixTimeMilliseconds(at), size));
                }
            }

            return notes;
        }
        catch (Exception exception) when (exception is FileNotFoundException or DirectoryNotFoundException)
        {
            return [];
        }
    }

    /// <summary>Drops every other note of the file's index; how many are left.</summary>
    private static int Thin(string file)
    {
        var index = file + TimesSuffix;
        var kept = Notes(file).Where((_, i) => i % 2 == 1).Select(n => NoteLine(n.At, n.Size)).ToList();
        File.WriteAllLines(index + ".tmp", kept);
        File.Move(index + ".tmp", index, overwrite: true);
        return kept.Count;
    }

    private static string NoteLine(DateTimeOffset at, long size) =>
        string.Create(CultureInfo.InvariantCulture, $"{at.ToUnixTimeMilliseconds()} {size}");

    /// <summary><paramref name="data"/>, which starts at <paramref name="start"/> in its file, cut where the notes say by when its bytes were written.</summary>
    private static IEnumerable<LogChunk> Dated(string stream, byte[] data, long start, IReadOnlyList<(DateTimeOffset At, long Size)> notes)
    {
        var at = 0;
        foreach (var (written, size) in notes)
        {
            var end = (int)Math.Clamp(size - start, 0, data.Length);
            if (end > at)
            {
                yield return new LogChunk(stream, data.AsMemory(at, end - at), written);
                at = end;
            }
        }

        if (at < data.Length)
        {
            yield return new LogChunk(stream, data.AsMemory(at));
        }
    }

    /// <summary>What the file holds for <paramref name="query"/> (at most its last 1 MiB), where that starts and where the file ends.</summary>
    private static (byte[] Data, long Start, long End) ReadKept(string file, LogQuery query, IReadOnlyList<(DateTimeOffset At, long Size)> notes)
    {
        try
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var end = stream.Length;
            // The bytes up to the last note at or before `since` were written by then; all after it may be later.
            var since = query.Since is { } time ? notes.LastOrDefault(n => n.At <= time).Size : 0;
            var start = Math.Max(Math.Min(since, end), query.TailLines is null ? end - MaxChunkBytes : end - MaxTailBytes);
            stream.Seek(start, SeekOrigin.Begin);
            var data = new byte[end - start];
            stream.ReadExactly(data);
            if (query.TailLines is { } wanted)
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

                return (data[cut..], start + cut, end);
            }

            return (data, start, end);
        }
        catch (Exception exception) when (exception is FileNotFoundException or DirectoryNotFoundException)
        {
            return ([], 0, 0);
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
