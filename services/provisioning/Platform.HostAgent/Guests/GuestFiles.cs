using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Platform.Hosting.Problems;
using Platform.Provisioning.Drivers.Guests;

namespace Platform.HostAgent.Guests;

/// <summary>A file or directory inside a machine as the files API shows it.</summary>
public sealed record GuestFileEntry(string Name, string Type, long Size, string Mode, int Uid, int Gid, DateTimeOffset ModifiedAt);

/// <summary>
/// Files inside a machine, read and written by commands that run in it (stat, cat, mkdir, mv, rm, tar), as its root and
/// with its confinement: every path resolves inside the machine, its <c>..</c> and symbolic links included, because the
/// machine's own kernel view resolves it; nothing is opened from the host's side.
/// </summary>
public static class GuestFiles
{
    /// <summary>What the scripts exit with when the path is not there, is a directory or is not one, or is a directory with entries.</summary>
    private const int NotFound = 64;
    private const int IsDirectory = 65;
    private const int NotDirectory = 66;
    private const int NotEmpty = 67;
    private const int Incomplete = 68;

    private const string StatFormat = "%F\t%s\t%a\t%u\t%g\t%Y\t%n";

    public static async Task<GuestFileEntry> StatAsync(IGuestAccess machine, string path, CancellationToken cancellationToken)
    {
        var (code, output, errors) = await RunAsync(machine, ["/bin/sh", "-c", """
            [ -e "$1" ] || exit 64
            exec stat -L -c "$2" -- "$1"
            """, "stat", path, StatFormat], null, cancellationToken);
        Check(code, errors, path);
        return Parse(output.TrimEnd('\n')) ?? throw Refused(path, $"stat answered '{output.Trim()}'");
    }

    public static async Task<IReadOnlyList<GuestFileEntry>> ListAsync(IGuestAccess machine, string path, CancellationToken cancellationToken)
    {
        var (code, output, errors) = await RunAsync(machine, ["/bin/sh", "-c", """
            [ -e "$1" ] || exit 64
            [ -d "$1" ] || exit 66
            cd -- "$1" || exit 1
            format=$2
            shift 2
            for f in .[!.]* ..?* *; do { [ -e "$f" ] || [ -L "$f" ]; } && set -- "$@" "$f"; done
            [ $# -eq 0 ] || exec stat -c "$format" -- "$@"
            """, "list", path, StatFormat], null, cancellationToken);
        Check(code, errors, path);
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(Parse).OfType<GuestFileEntry>().OrderBy(e => e.Name, StringComparer.Ordinal).ToList();
    }

    /// <summary>Starts reading the file: its bytes are the process's output (the caller copies and disposes it).</summary>
    public static Task<IGuestProcess> ReadAsync(IGuestAccess machine, string path, CancellationToken cancellationToken) =>
        StartAsync(machine, ["cat", "--", path], cancellationToken);

    /// <summary>
    /// Writes <paramref name="size"/> bytes from <paramref name="content"/> to the file, creating its missing parents: into a
    /// new file next to it, renamed over it once all of it arrived, so that a reader sees the old file or the new one,
    /// never part of it. Returns its SHA-256 (hex).
    /// </summary>
    public static async Task<string> WriteAsync(IGuestAccess machine, string path, string mode, long size, Stream content, CancellationToken cancellationToken)
    {
        await using var process = await StartAsync(machine, ["/bin/sh", "-c", """
            [ -d "$1" ] && exit 65
            dir=$(dirname -- "$1")
            mkdir -p -- "$dir" || exit 1
            part=$(mktemp "$dir/.platform-upload.XXXXXX") || exit 1
            trap 'rm -f -- "$part"' EXIT
            trap 'exit 1' INT TERM HUP
            cat > "$part" || exit 1
            got=$(stat -c %s -- "$part")
            [ "$got" = "$3" ] || { echo "received $got of $3 bytes" >&2; exit 68; }
            chmod "$2" "$part" && mv -f -- "$part" "$1" || exit 1
            trap - EXIT
            """, "write", path, mode, size.ToString(CultureInfo.InvariantCulture)], cancellationToken);
        var errors = new StreamReader(process.StandardError).ReadToEndAsync(cancellationToken);
        var output = process.StandardOutput.CopyToAsync(Stream.Null, cancellationToken);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[128 * 1024];
        long sent = 0;
        try
        {
            int read;
            while ((read = await content.ReadAsync(buffer, cancellationToken)) > 0)
            {
                sent += read;
                if (sent > size)
                {
                    throw LongerThanDeclared(size);
                }

                hash.AppendData(buffer, 0, read);
                await process.StandardInput.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            }

            process.StandardInput.Close();
        }
        catch (IOException) when (process.Exited.IsCompleted)
        {
            // It stopped reading: its exit code and errors say why.
        }
        catch
        {
            // The upload broke off: the partial file goes (the script's trap), nothing is renamed.
            process.Signal(15);
            throw;
        }

        var code = await process.Exited;
        await output;
        Check(code, await errors, path);
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>Deletes the file, or the directory: only an empty one unless <paramref name="recursive"/>.</summary>
    public static async Task DeleteAsync(IGuestAccess machine, string path, bool recursive, CancellationToken cancellationToken)
    {
        var (code, _, errors) = await RunAsync(machine, ["/bin/sh", "-c", """
            { [ -e "$1" ] || [ -L "$1" ]; } || exit 64
            if [ -d "$1" ] && [ ! -L "$1" ]; then
              if [ "$2" = true ]; then exec rm -rf -- "$1"; fi
              rmdir -- "$1" 2>/dev/null || exit 67
            else
              exec rm -f -- "$1"
            fi
            """, "delete", path, recursive ? "true" : "false"], null, cancellationToken);
        Check(code, errors, path);
    }

    /// <summary>Starts writing the directory as a tar to the process's output.</summary>
    public static async Task<IGuestProcess> ArchiveAsync(IGuestAccess machine, string path, CancellationToken cancellationToken)
    {
        var entry = await StatAsync(machine, path, cancellationToken);
        if (entry.Type != "directory")
        {
            throw new ProblemException(ProblemTypes.Conflict, StatusCodes.Status409Conflict, "Not a directory.", $"{path} is a {entry.Type}: an archive is of a directory.");
        }

        return await StartAsync(machine, ["tar", "-C", path, "-cf", "-", "."], cancellationToken);
    }

    /// <summary>Extracts a tar of <paramref name="size"/> bytes into the directory, creating it when it is missing; returns the bytes taken.</summary>
    public static async Task ExtractAsync(IGuestAccess machine, string path, long size, Stream content, CancellationToken cancellationToken)
    {
        await using var process = await StartAsync(machine, ["/bin/sh", "-c", """
            [ -e "$1" ] && [ ! -d "$1" ] && exit 66
            mkdir -p -- "$1" && exec tar -C "$1" -xf -
            """, "extract", path], cancellationToken);
        var errors = new StreamReader(process.StandardError).ReadToEndAsync(cancellationToken);
        var output = process.StandardOutput.CopyToAsync(Stream.Null, cancellationToken);
        try
        {
            await CopyAtMostAsync(content, process.StandardInput, size, () => LongerThanDeclared(size), cancellationToken);
            process.StandardInput.Close();
        }
        catch (IOException) when (process.Exited.IsCompleted)
        {
        }

        var code = await process.Exited;
        await output;
        Check(code, await errors, path);
    }

    /// <summary>Copies <paramref name="source"/> to <paramref name="target"/>, throwing what <paramref name="tooMuch"/> makes once more than <paramref name="limit"/> bytes came.</summary>
    public static async Task CopyAtMostAsync(Stream source, Stream target, long limit, Func<ProblemException> tooMuch, CancellationToken cancellationToken)
    {
        var buffer = new byte[128 * 1024];
        long copied = 0;
        int read;
        while ((read = await source.ReadAsync(buffer, cancellationToken)) > 0)
        {
            copied += read;
            if (copied > limit)
            {
                throw tooMuch();
            }

            await target.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
        }
    }

    private static ProblemException LongerThanDeclared(long size) =>
        new(ProblemTypes.MalformedRequest, StatusCodes.Status400BadRequest, "The body is longer than its Content-Length.", $"More than {size} bytes arrived.");

    private static async Task<IGuestProcess> StartAsync(IGuestAccess machine, IReadOnlyList<string> argv, CancellationToken cancellationToken)
    {
        try
        {
            return await machine.StartAsync(new GuestCommand(argv), cancellationToken);
        }
        catch (GuestException refused)
        {
            throw new ProblemException(ProblemTypes.Conflict, StatusCodes.Status409Conflict, "The machine cannot be reached inside.", refused.Message);
        }
    }

    private static async Task<(int Code, string Output, string Errors)> RunAsync(IGuestAccess machine, IReadOnlyList<string> argv, Stream? input, CancellationToken cancellationToken)
    {
        await using var process = await StartAsync(machine, argv, cancellationToken);
        var output = new StreamReader(process.StandardOutput, Encoding.UTF8).ReadToEndAsync(cancellationToken);
        var errors = new StreamReader(process.StandardError, Encoding.UTF8).ReadToEndAsync(cancellationToken);
        if (input is not null)
        {
            await input.CopyToAsync(process.StandardInput, cancellationToken);
        }

        process.StandardInput.Close();
        var code = await process.Exited.WaitAsync(cancellationToken);
        return (code, await output, await errors);
    }

    private static void Check(int code, string errors, string path)
    {
        switch (code)
        {
            case 0:
                return;
            case NotFound:
                throw new ProblemException(ProblemTypes.NotFound, StatusCodes.Status404NotFound, "Not Found", $"There is no {path} in the machine.");
            case IsDirectory:
                throw new ProblemException(ProblemTypes.Conflict, StatusCodes.Status409Conflict, "A directory is there.", $"{path} is a directory: write a file at another path, or delete the directory first.");
            case NotDirectory:
                throw new ProblemException(ProblemTypes.Conflict, StatusCodes.Status409Conflict, "Not a directory.", $"{path} is not a directory.");
            case NotEmpty:
                throw new ProblemException(ProblemTypes.Conflict, StatusCodes.Status409Conflict, "The directory is not empty.", $"{path} has entries: delete it with ?recursive=true.");
            case Incomplete:
                throw new ProblemException(ProblemTypes.MalformedRequest, StatusCodes.Status400BadRequest, "The body is shorter than its Content-Length.", errors.Trim());
        }

        throw errors.Contains("Permission denied", StringComparison.Ordinal)
            ? new ProblemException(ProblemTypes.Forbidden, StatusCodes.Status403Forbidden, "The machine refused.", $"{path}: permission denied.")
            : Refused(path, errors.Trim().Length > 0 ? errors.Trim() : $"exit code {code}");
    }

    private static ProblemException Refused(string path, string why) =>
        new(ProblemTypes.Conflict, StatusCodes.Status409Conflict, "The machine refused.", $"{path}: {(why.Length > 500 ? why[..500] : why)}");

    /// <summary>One line of <see cref="StatFormat"/>: GNU's and busybox's stat name the types alike.</summary>
    private static GuestFileEntry? Parse(string line)
    {
        var fields = line.Split('\t', 7);
        if (fields.Length < 7 || !long.TryParse(fields[1], CultureInfo.InvariantCulture, out var size)
            || !int.TryParse(fields[3], CultureInfo.InvariantCulture, out var uid) || !int.TryParse(fields[4], CultureInfo.InvariantCulture, out var gid)
            || !long.TryParse(fields[5], CultureInfo.InvariantCulture, out var modified))
        {
            return null;
        }

        var type = fields[0] switch
        {
            "regular file" or "regular empty file" => "file",
            "directory" => "directory",
            "symbolic link" => "symlink",
            _ => "other",
        };
        return new GuestFileEntry(fields[6], type, size, fields[2].PadLeft(4, '0'), uid, gid, DateTimeOffset.FromUnixTimeSeconds(modified));
    }
}
