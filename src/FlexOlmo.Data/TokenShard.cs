using System.Text;
using System.Text.RegularExpressions;

namespace FlexOlmo.Data;

/// <summary>
/// Pre-tokenised shards as OLMo-core writes them: flat arrays of uint16 or uint32 ids, as raw memmap files (.npy or
/// .bin without a header) or .npy files with a NumPy header. Documents are separated by EOS inside the stream.
/// </summary>
internal static partial class TokenShard
{
    private static readonly byte[] NpyMagic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    private const int MaxHeaderBytes = 65536;

    /// <param name="rawElementSize">Bytes per id for files without a header (2 or 4).</param>
    public static TokenSource Open(string path, int rawElementSize)
    {
        var length = new FileInfo(path).Length;
        using var stream = File.OpenRead(path);
        var prefix = new byte[Math.Min(10, length)];
        stream.ReadExactly(prefix);
        if (prefix.AsSpan().StartsWith(NpyMagic) && prefix.Length == 10)
        {
            return OpenNpy(path, stream, prefix, length);
        }

        if (rawElementSize is not (2 or 4))
        {
            throw new DataException($"--token-dtype must be uint16 or uint32 (got {rawElementSize * 8}-bit).");
        }

        return Checked(path, 0, length, rawElementSize);
    }

    /// <summary>
    /// A .npy file: the header must describe what the file holds, a one-dimensional C-ordered little-endian uint16 or
    /// uint32 array whose element count times width is exactly the bytes after the header. Anything else would be
    /// read as wrong ids, so it is refused, naming the file and the mismatch.
    /// </summary>
    private static TokenSource OpenNpy(string path, FileStream stream, byte[] prefix, long length)
    {
        var major = prefix[6];
        if (major is not (1 or 2 or 3))
        {
            throw new DataException($"{path}: NumPy format version {major}.{prefix[7]} is not one this reader knows (1, 2 or 3).");
        }

        long headerLength;
        long dataStart;
        if (major == 1)
        {
            headerLength = prefix[8] | (prefix[9] << 8);
            dataStart = 10 + headerLength;
        }
        else
        {
            var more = new byte[2];
            if (stream.Read(more) != 2)
            {
                throw new DataException($"{path}: truncated NumPy header.");
            }

            headerLength = (uint)(prefix[8] | (prefix[9] << 8) | (more[0] << 16) | (more[1] << 24));
            dataStart = 12 + headerLength;
        }

        if (headerLength <= 0 || headerLength > MaxHeaderBytes || dataStart > length)
        {
            throw new DataException($"{path}: malformed NumPy header (length {headerLength}, file {length} bytes).");
        }

        stream.Position = dataStart - headerLength;
        var header = new byte[headerLength];
        stream.ReadExactly(header);
        var text = Encoding.ASCII.GetString(header);
        var descr = DescrPattern().Match(text);
        var shape = ShapePattern().Match(text);
        if (!descr.Success || !shape.Success || !FortranPattern().IsMatch(text))
        {
            throw new DataException($"{path}: NumPy header must give 'descr', 'fortran_order': False and 'shape' (got {text.Trim()}).");
        }

        if (descr.Groups[1].Value == ">")
        {
            throw new DataException($"{path}: big-endian ids ('{descr.Value}') are not supported; save the array as little-endian ('<u2' or '<u4').");
        }

        var size = descr.Groups[2].Value switch
        {
            "u2" => 2,
            "u4" => 4,
            _ => throw new DataException($"{path}: token shards hold uint16 or uint32 ids, not '{descr.Groups[2].Value}'."),
        };
        var dimensions = shape.Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (dimensions.Length != 1 || !long.TryParse(dimensions[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var count))
        {
            throw new DataException($"{path}: token shards are one-dimensional arrays of ids; the header says shape ({shape.Groups[1].Value}). Flatten it (array.reshape(-1)).");
        }

        var dataBytes = length - dataStart;
        if (count > dataBytes / size || count * size != dataBytes)
        {
            throw new DataException($"{path}: the header says {count} ids of {size} bytes ({count * (double)size:0} bytes), but the file holds {dataBytes} bytes after the header; the file is truncated or its header is wrong.");
        }

        return Checked(path, dataStart, dataBytes, size);
    }

    private static TokenSource Checked(string path, long offset, long bytes, int size)
    {
        if (bytes % size != 0)
        {
            throw new DataException($"{path}: {bytes} bytes of data is not a whole number of {size}-byte token ids; wrong --token-dtype?");
        }

        return new TokenSource(path, offset, bytes / size, size, Documents: 0);
    }

    [GeneratedRegex(@"'descr':\s*'([<>|=]?)([a-zA-Z][0-9]+)'")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"'shape':\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();

    [GeneratedRegex(@"'fortran_order':\s*False")]
    private static partial Regex FortranPattern();
}
