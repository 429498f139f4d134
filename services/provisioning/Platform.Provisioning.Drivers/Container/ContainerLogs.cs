using System.Buffers.Binary;
using System.Text;

namespace Platform.Provisioning.Drivers.Container;

/// <summary>What a container wrote to its standard output and its standard error.</summary>
public sealed record ContainerLogs(string Output, string Errors)
{
    private const int HeaderLength = 8;

    /// <summary>
    /// Splits the stream the engine sends for a container without a TTY: frames of an 8-byte header (stream:
    /// 1 = stdout, 2 = stderr; three zero bytes; the payload's length, big-endian) and the payload. Each stream's
    /// bytes are joined before decoding, since a frame may end in the middle of a UTF-8 character. A frame cut short
    /// (the log was cut while it was written) keeps what arrived.
    /// </summary>
    public static ContainerLogs Demultiplex(ReadOnlySpan<byte> stream)
    {
        var output = new List<byte>();
        var errors = new List<byte>();
        while (stream.Length >= HeaderLength)
        {
            var length = (int)Math.Min(BinaryPrimitives.ReadUInt32BigEndian(stream[4..HeaderLength]), (uint)(stream.Length - HeaderLength));
            var payload = stream.Slice(HeaderLength, length);
            (stream[0] == 2 ? errors : output).AddRange(payload);
            stream = stream[(HeaderLength + length)..];
        }

        return new ContainerLogs(Encoding.UTF8.GetString(output.ToArray()), Encoding.UTF8.GetString(errors.ToArray()));
    }
}
